import { StoreError, StoreUnavailableError, UsageError } from '../../errors.ts';
import { chainKeyFinder } from '../../secret.ts';
import type { Row } from '../rows.ts';
import type { ChainHead } from '../store-types.ts';
import { describeDriverError, isTransientStoreError } from '../transient.ts';
import { postgresDialect } from './postgres-dialect.ts';
import type { PostgresTx } from './postgres-tx.ts';

/**
 * The slice of the `pg` driver this store uses. Declared here so the core never depends on the
 * driver's types: any object with these methods works (a `pg.Pool`, or a wrapper around one).
 */
export interface PgResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
}

export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<PgResult>;
}

/** A connection checked out of the pool; `release(error)` destroys it instead of reusing it. */
export interface PgPoolClient extends PgQueryable {
  release(destroy?: Error | boolean): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
}

export interface PgPool extends PgQueryable {
  connect(): Promise<PgPoolClient>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export interface PostgresStoreOptions {
  /** A `postgres://` URL; the store creates (and closes) its own pool. */
  connectionString?: string;
  /** A ready pool (a `pg.Pool`); the store uses it and leaves it open on close. */
  pool?: PgPool;
  /** Schema holding the store's tables (created if missing); default `checkpointed`. */
  schema?: string;
  /** Connections in the pool the store creates; default 4 (job tx, heartbeat, runner, spare). */
  maxConnections?: number;
  /** Name for messages: the URL without its password. */
  location?: string;
  /** The key of the event log's hash chain; default: from CKPT_SECRET_KEY, if set. */
  chainKey?: () => Buffer | undefined;
}

export const DEFAULT_PG_SCHEMA = 'checkpointed';

/** Now on the database's clock, in epoch ms: every lease is judged by one clock. */
export const NOW = postgresDialect.now;

/** How long a transaction of ours may sit idle, its worker frozen, before PostgreSQL ends the session. */
export const FROZEN_SESSION_MS = postgresDialect.frozenSessionMs;

export const quoteName = (name: string): string => postgresDialect.quote(name);

/** A `pg.Pool` for a URL. Imported on first use, so SQLite-only users never load the driver. */
export async function createPgPool(config: { connectionString: string; max: number }): Promise<PgPool> {
  const specifier = 'pg';
  let pg: { default: { Pool: new (config: { connectionString: string; max: number }) => PgPool } };
  try {
    pg = await import(specifier);
  } catch {
    throw new UsageError('a postgres:// store needs the pg package: npm install pg');
  }
  const pool = new pg.default.Pool(config);
  // An idle connection dropped by a server restart: the next checkout gets a fresh one.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * What every concern of the PostgreSQL store shares: the pool, the schema prefix, one-statement
 * queries and short transactions with the store's error handling, and the open job transactions
 * (so close can end them). Each `postgres-<concern>.ts` class takes this in its constructor.
 */
export class PostgresDriver {
  readonly location: string;
  readonly schema: string;
  /** `"schema".` — prefix of every table name. */
  readonly s: string;
  readonly openTxs = new Set<PostgresTx>();
  /** Called on close, before the pool ends. */
  readonly onClose: (() => void)[] = [];
  readonly chainKey: () => Buffer | undefined;
  /** The chain head this process last wrote, per instance: the fast path of appendChained. */
  readonly chainHeads = new Map<number, ChainHead>();
  /**
   * The database's clock minus this machine's, measured at open (syncClock) and at each
   * `now()`: events are stamped with it, so a worker whose clock is off dates nothing wrongly.
   */
  clockOffsetMs = 0;

  /** Measures clockOffsetMs: the database's time against the middle of the round trip. */
  async syncClock(): Promise<number> {
    const sent = Date.now();
    const now = Number((await this.query(`SELECT ${NOW} AS now`))[0]?.now);
    const received = Date.now();
    if (Number.isFinite(now)) this.clockOffsetMs = Math.round(now - (sent + received) / 2);
    return now;
  }
  readonly #options: PostgresStoreOptions;
  #pool: Promise<PgPool> | undefined;
  #ended = false;

  constructor(options: PostgresStoreOptions) {
    if (options.pool === undefined && options.connectionString === undefined) throw new UsageError('a PostgreSQL store needs a connection string or a pool');
    this.#options = options;
    this.schema = options.schema ?? DEFAULT_PG_SCHEMA;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(this.schema)) {
      throw new UsageError(`the schema name ${JSON.stringify(this.schema)} is not valid; use letters, digits and '_' (e.g. ?schema=checkpointed)`);
    }
    this.s = `${quoteName(this.schema)}.`;
    this.chainKey = options.chainKey ?? chainKeyFinder(process.env, undefined);
    this.location = options.location ?? (options.pool ? `postgres (schema ${this.schema})` : String(options.connectionString));
  }

  /** The pool, created on first use; never again after close (a job's tx may still ask). */
  pool = (): Promise<PgPool> => {
    if (this.#ended) return Promise.reject(new StoreError(`the store ${this.location} is closed`));
    this.#pool ??= (async () => {
      if (this.#options.pool) return this.#options.pool;
      return createPgPool({ connectionString: String(this.#options.connectionString), max: this.#options.maxConnections ?? 4 });
    })();
    return this.#pool;
  };

  /** One statement on any pooled connection (or on `on`); driver errors become the store's. */
  async query(sql: string, values: unknown[] = [], on?: PgQueryable): Promise<Row[]> {
    try {
      return (await (on ?? (await this.pool())).query(sql, values)).rows;
    } catch (error) {
      throw this.wrap(error);
    }
  }

  /** A pooled connection for one statement at a time, with the store's error handling. */
  readonly any: PgQueryable = { query: async (sql, values) => ({ rows: await this.query(sql, values), rowCount: null }) };

  /** "Unreachable" driver errors become StoreUnavailableError, which the retry wrapper retries. */
  wrap(error: unknown): unknown {
    if (error instanceof StoreError || error instanceof StoreUnavailableError) return error;
    if (isTransientStoreError(error)) {
      return new StoreUnavailableError(
        `the PostgreSQL store ${this.location} is unreachable: ${describeDriverError(error)}; check that the server is up and the URL is right, then run again`,
        { cause: error },
      );
    }
    return error;
  }

  /** Runs `work` in its own short transaction on one connection. */
  async transaction<T>(work: (client: PgPoolClient) => Promise<T>): Promise<T> {
    let client: PgPoolClient;
    try {
      client = await (await this.pool()).connect();
    } catch (error) {
      throw this.wrap(error);
    }
    let broken: Error | undefined;
    const onError = (error: Error) => {
      broken = error;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      // The store's own transactions are a few statements long; one frozen mid-way (its worker
      // stopped) must not keep a shard row locked from every other worker for long.
      await client.query(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [String(FROZEN_SESSION_MS)]);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken ??= rollbackError;
      });
      if (isTransientStoreError(error)) broken ??= error as Error;
      throw this.wrap(error);
    } finally {
      client.off('error', onError);
      client.release(broken ?? false);
    }
  }

  /** Roll back the job transactions still open, and end the pool if the store made it. */
  async close(): Promise<void> {
    for (const hook of this.onClose) hook();
    for (const tx of this.openTxs) await tx.end(false).catch(() => undefined);
    this.openTxs.clear();
    this.#ended = true;
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool !== undefined && this.#options.pool === undefined) await (await pool).end().catch(() => undefined);
  }
}
