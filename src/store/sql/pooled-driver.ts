import { StoreError, StoreUnavailableError, UsageError } from '../../errors.ts';
import { chainKeyFinder } from '../../secret.ts';
import type { Row } from '../rows.ts';
import { describeDriverError } from '../transient.ts';
import { ChainKeyCheck } from './chain-key-check.ts';
import type { Dialect } from './dialect.ts';
import type { SqlDriver, SqlJobTx, SqlQueryable, SqlResult } from './sql-driver.ts';

/** How a server's driver is set up: its pool (given, or made on first use), its table prefix, its name in messages. */
export interface PooledDriverConfig<Pool> {
  location: string;
  prefix: string;
  /** A ready pool: used, and left open on close. */
  pool: Pool | undefined;
  /** Makes the store's own pool (ended on close) when none was given. */
  createPool: (() => Promise<Pool>) | undefined;
  /** What to say when neither is there. */
  missing: string;
  chainKey: (() => Buffer | undefined) | undefined;
}

/**
 * What every server's driver shares: the pool (made once, never again after close: a job's tx may
 * still ask), the open job transactions, the database's clock offset, and close. Each server says
 * how it runs a statement and a short transaction, and how its errors read (postgres-driver.ts,
 * mysql-driver.ts).
 */
export abstract class PooledDriver<Pool extends { end(): Promise<void> }> implements SqlDriver {
  abstract readonly dialect: Dialect;
  readonly location: string;
  readonly prefix: string;
  readonly openTxs = new Set<SqlJobTx>();
  /** Called on close, before the pool ends. */
  readonly onClose: (() => void)[] = [];
  /** The key of the event log's hash chain; default: from CKPT_SECRET_KEY, if set. */
  readonly chainKey: () => Buffer | undefined;
  readonly chainKeyCheck: ChainKeyCheck;
  /**
   * The database's clock minus this machine's, measured at open (syncClock) and at each
   * `now()`: events are stamped with it, so a worker whose clock is off dates nothing wrongly.
   */
  clockOffsetMs = 0;
  readonly #config: PooledDriverConfig<Pool>;
  #pool: Promise<Pool> | undefined;
  #ended = false;

  constructor(config: PooledDriverConfig<Pool>) {
    if (config.pool === undefined && config.createPool === undefined) throw new UsageError(config.missing);
    this.#config = config;
    this.location = config.location;
    this.prefix = config.prefix;
    this.chainKey = config.chainKey ?? chainKeyFinder(process.env, undefined);
    this.chainKeyCheck = new ChainKeyCheck(config.prefix, this.chainKey);
  }

  abstract run(sql: string, values?: unknown[]): Promise<SqlResult>;
  abstract transaction<T>(work: (on: SqlQueryable) => Promise<T>): Promise<T>;

  /** "Unreachable" driver errors (the dialect's transient ones) become StoreUnavailableError, which the retry wrapper retries. */
  wrap(error: unknown): unknown {
    if (error instanceof StoreError || error instanceof StoreUnavailableError || !this.dialect.isTransient(error)) return error;
    return new StoreUnavailableError(
      `the ${this.dialect.title} store ${this.location} is unreachable: ${describeDriverError(error)}; check that the server is up and the URL is right, then run again`,
      { cause: error },
    );
  }

  /** The pool, made on first use; never again after close. */
  pool = (): Promise<Pool> => {
    if (this.#ended) return Promise.reject(new StoreError(`the store ${this.location} is closed`));
    this.#pool ??= (async () => this.#config.pool ?? (this.#config.createPool as () => Promise<Pool>)())();
    return this.#pool;
  };

  /** A connection of the pool, for a short transaction; driver errors become the store's. */
  protected async checkout<Connection>(take: (pool: Pool) => Promise<Connection>): Promise<Connection> {
    try {
      return await take(await this.pool());
    } catch (error) {
      throw this.wrap(error);
    }
  }

  async rows(sql: string, values?: unknown[]): Promise<Row[]> {
    return (await this.run(sql, values)).rows;
  }

  /** Measures clockOffsetMs: the database's time against the middle of the round trip. */
  async syncClock(): Promise<number> {
    const sent = Date.now();
    const now = Number((await this.rows(`SELECT ${this.dialect.now} AS now`))[0]?.now);
    const received = Date.now();
    if (Number.isFinite(now)) this.clockOffsetMs = Math.round(now - (sent + received) / 2);
    return now;
  }

  /** Roll back the job transactions still open, and end the pool if the store made it. */
  async close(): Promise<void> {
    for (const hook of this.onClose) hook();
    for (const tx of this.openTxs) await tx.end(false).catch(() => undefined);
    this.openTxs.clear();
    this.#ended = true;
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool !== undefined && this.#config.pool === undefined) await (await pool.catch(() => undefined))?.end().catch(() => undefined);
  }
}
