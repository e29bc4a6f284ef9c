import { StoreError, UsageError } from '../../errors.ts';
import type { Row } from '../rows.ts';
import { PooledDriver } from '../sql/pooled-driver.ts';
import type { SqlResult } from '../sql/sql-driver.ts';
import { mysqlDialect } from './mysql-dialect.ts';

/**
 * The slice of the `mysql2` driver (its promise API) this store uses. Declared here so the core
 * never depends on the driver's types: any pool with these methods works.
 */
export type MysqlRawResult = [unknown, unknown];

export interface MysqlConnection {
  query(sql: string, values?: unknown[]): Promise<MysqlRawResult>;
  release(): void;
  destroy(): void;
}

/** A connection as the pool's `connection` event hands it over: the callback API. */
export interface MysqlCoreConnection {
  on(event: 'error', listener: (error: Error) => void): unknown;
  query(sql: string, callback: (error: Error | null) => void): unknown;
}

export interface MysqlPool {
  query(sql: string, values?: unknown[]): Promise<MysqlRawResult>;
  getConnection(): Promise<MysqlConnection>;
  end(): Promise<void>;
  on(event: 'connection', listener: (connection: MysqlCoreConnection) => void): unknown;
}

/** One statement's result, the same shape for a SELECT and for a write. */
export interface MysqlResult extends SqlResult {
  /** After a write: whether the session is still inside a transaction; undefined after a SELECT. */
  inTransaction: boolean | undefined;
}

/** Something that runs one statement: the pool, a store transaction or the job's. */
export interface MysqlQueryable {
  query(sql: string, values?: unknown[]): Promise<MysqlResult>;
}

const SERVER_STATUS_IN_TRANS = 1;

export function toResult([result]: MysqlRawResult): MysqlResult {
  if (Array.isArray(result)) return { rows: result as Row[], affectedRows: result.length, insertId: 0, inTransaction: undefined };
  const header = (result ?? {}) as { affectedRows?: number; insertId?: number; serverStatus?: number };
  return {
    rows: [],
    affectedRows: Number(header.affectedRows ?? 0),
    insertId: Number(header.insertId ?? 0),
    inTransaction: header.serverStatus === undefined ? undefined : (header.serverStatus & SERVER_STATUS_IN_TRANS) !== 0,
  };
}

/** Now on the database's clock, in epoch ms: every lease is judged by one clock. */
export const NOW = mysqlDialect.now;

/** How long a transaction of ours may sit idle, its worker frozen, before the server ends the session. */
export const FROZEN_SESSION_MS = mysqlDialect.frozenSessionMs;

/** Bound the session's idle wait (see MysqlDialect.idleLimit). */
export const boundIdleWait = (ms: number): string => mysqlDialect.idleLimit(ms);
/** Puts back what boundIdleWait and the job's transaction (boundTxSession) change. */
export const RESTORE_WAIT = 'SET SESSION wait_timeout = DEFAULT, innodb_lock_wait_timeout = DEFAULT';

/**
 * The job's transaction, bounded by its lease (at least FROZEN_SESSION_MS): the server ends the
 * session once it has sent nothing that long (its transaction rolled back, its row locks freed),
 * and a statement waits for another session's row locks no longer.
 */
export function boundTxSession(leaseMs: number): string {
  const seconds = Math.max(1, Math.ceil(Math.max(leaseMs, FROZEN_SESSION_MS) / 1000));
  return `SET SESSION wait_timeout = ${seconds}, innodb_lock_wait_timeout = ${seconds}`;
}

export const quoteName = (name: string): string => mysqlDialect.quote(name);

export const isTransientMysqlError = (error: unknown): boolean => mysqlDialect.isTransient(error);

/** A driver error that left the connection unusable (mysql2 marks those `fatal`). */
export const isFatalMysqlError = (error: unknown): boolean => mysqlDialect.isFatal(error);

export interface MysqlUrlParts {
  /** The URL for the driver: our own parameters taken out. */
  driverUrl: string;
  /** Prefix of the store's table names in the URL's database. */
  prefix: string;
  database: string;
}

export const DEFAULT_MYSQL_PREFIX = 'ckpt_';

/** `mysql://user:password@host:port/db?prefix=ckpt_`: the store's tables live in `db`, named `<prefix>shards`, …. */
export function parseMysqlUrl(url: string): MysqlUrlParts {
  const parsed = new URL(url);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  const prefix = parsed.searchParams.get('prefix') ?? DEFAULT_MYSQL_PREFIX;
  if (!/^[A-Za-z0-9_]{0,32}$/.test(prefix)) {
    throw new UsageError(`the table prefix ${JSON.stringify(prefix)} is not valid; use up to 32 letters, digits and '_' (e.g. ?prefix=ckpt_)`);
  }
  parsed.searchParams.delete('prefix');
  return { driverUrl: parsed.toString(), prefix, database };
}

/**
 * A `mysql2` promise pool for a URL. Imported on first use, so other stores' users never load the driver.
 * `multipleStatements`: its connections take several statements in one round trip; only the
 * store's own batches get such a pool (see MysqlDriver.batchConnection), never the job's `ctx.tx`.
 */
export async function createMysqlPool(config: { url: string; max: number; multipleStatements?: boolean; idleLimitMs?: number }): Promise<MysqlPool> {
  const specifier = 'mysql2/promise';
  let mysql: { createPool(config: object): MysqlPool };
  try {
    mysql = await import(specifier);
  } catch {
    throw new UsageError('a mysql:// store needs the mysql2 package: npm install mysql2');
  }
  // BIGINT columns come back as numbers (epoch ms and ids stay far below 2^53).
  const pool = mysql.createPool({
    uri: config.url,
    connectionLimit: config.max,
    enableKeepAlive: true,
    supportBigNumbers: false,
    multipleStatements: config.multipleStatements === true,
  });
  pool.on('connection', (connection) => {
    // The driver may report a dead idle connection more than once; a second report with no
    // listener would end the process. The pool drops such a connection by itself.
    connection.on('error', () => undefined);
    // READ COMMITTED, PostgreSQL's default: no gap locks, so workers committing checkpoints of
    // neighbouring shards never wait on (or deadlock with) each other's index ranges. Sent before
    // the pool hands the connection out, so it is queued ahead of the first statement.
    connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', () => undefined);
    // A pool whose sessions the server ends after this much silence, for good (see MysqlDriver.batchConnection).
    if (config.idleLimitMs !== undefined) connection.query(boundIdleWait(config.idleLimitMs), () => undefined);
  });
  return pool;
}

export interface MysqlStoreOptions {
  /** A `mysql://` URL (without `?prefix=`); the store creates (and closes) its own pool. */
  url?: string;
  /** A ready `mysql2/promise` pool; the store uses it and leaves it open on close. */
  pool?: MysqlPool;
  /** The database holding the tables; names the migration lock (default: none, one lock per prefix). */
  database?: string;
  /** Prefix of the store's table names; default `ckpt_`. */
  prefix?: string;
  /** Connections in the pool the store creates; default 4 (job tx, heartbeat, runner, spare). */
  maxConnections?: number;
  /** Name for messages: the URL without its password. */
  location?: string;
  /** The key of the event log's hash chain; default: from CKPT_SECRET_KEY, if set. */
  chainKey?: () => Buffer | undefined;
}

/**
 * What every concern of the MySQL store shares: the pool, the table prefix, one-statement queries
 * and short transactions with the store's error handling, and the open job transactions (so close
 * can end them). The shared flows (src/store/sql/) and the journal run over it.
 */
export class MysqlDriver extends PooledDriver<MysqlPool> {
  readonly dialect = mysqlDialect;
  readonly database: string;
  readonly #makeBatchPool: (() => Promise<MysqlPool>) | undefined;
  #batchPool: Promise<MysqlPool> | undefined;
  /** The batch pool's connections between batches, the last given back last, and since when. */
  readonly #batchIdle: { connection: MysqlConnection; since: number }[] = [];
  #closed = false;

  constructor(options: MysqlStoreOptions) {
    const prefix = options.prefix ?? DEFAULT_MYSQL_PREFIX;
    if (!/^[A-Za-z0-9_]{0,32}$/.test(prefix)) {
      throw new UsageError(`the table prefix ${JSON.stringify(prefix)} is not valid; use up to 32 letters, digits and '_' (e.g. ?prefix=ckpt_)`);
    }
    const { url } = options;
    super({
      location: options.location ?? (options.pool ? `mysql (tables ${prefix}*)` : String(url)),
      prefix,
      pool: options.pool,
      createPool: url === undefined ? undefined : () => createMysqlPool({ url, max: options.maxConnections ?? 4 }),
      missing: 'a MySQL store needs a URL or a pool',
      chainKey: options.chainKey,
    });
    this.database = options.database ?? '';
    this.#makeBatchPool =
      url === undefined || options.pool !== undefined
        ? undefined
        : () => createMysqlPool({ url, max: options.maxConnections ?? 4, multipleStatements: true, idleLimitMs: FROZEN_SESSION_MS });
  }

  /**
   * A connection of a second pool, made from the store's URL on first use, that takes several
   * statements in one round trip: the effect journal sends a batch's whole transaction at once.
   * Its statements are the store's own, values escaped by the driver; the job's `ctx.tx` never
   * gets one of its connections. Undefined when the store was handed a pool (its connections'
   * settings are the caller's): the journal then sends one statement at a time.
   *
   * Its sessions are bounded for good (wait_timeout FROZEN_SESSION_MS, set once when each is
   * made), not per batch: a batch whose guess failed leaves its transaction open until the
   * client's ROLLBACK, and a client frozen there must not keep the shard and the chain head
   * locked for longer. So an idle session may be ended by the server: one that has been idle half
   * that long is closed here rather than handed out (giveBackBatch keeps when each came back).
   */
  async batchConnection(): Promise<MysqlConnection | undefined> {
    if (this.#makeBatchPool === undefined) return undefined;
    if (this.#closed) throw new StoreError(`the store ${this.location} is closed`);
    for (let idle = this.#batchIdle.pop(); idle !== undefined; idle = this.#batchIdle.pop()) {
      if (performance.now() - idle.since < FROZEN_SESSION_MS / 2) return idle.connection;
      idle.connection.destroy();
    }
    this.#batchPool ??= this.#makeBatchPool();
    try {
      return await (await this.#batchPool).getConnection();
    } catch (error) {
      throw this.wrap(error);
    }
  }

  /** Takes back a connection of batchConnection: kept for the next batch if its session is in a known state, else closed. */
  giveBackBatch(connection: MysqlConnection, usable: boolean): void {
    if (usable && !this.#closed) this.#batchIdle.push({ connection, since: performance.now() });
    else connection.destroy();
  }

  override async close(): Promise<void> {
    this.#closed = true;
    await super.close();
    for (const idle of this.#batchIdle.splice(0)) idle.connection.destroy();
    const batchPool = this.#batchPool;
    this.#batchPool = undefined;
    if (batchPool !== undefined) await (await batchPool.catch(() => undefined))?.end().catch(() => undefined);
  }

  /** One statement on any pooled connection (autocommit); driver errors become the store's. */
  async run(sql: string, values?: unknown[]): Promise<MysqlResult> {
    try {
      return toResult(await (await this.pool()).query(sql, values));
    } catch (error) {
      throw this.wrap(error);
    }
  }

  /** Runs `work` in its own short transaction on one connection. */
  async transaction<T>(work: (tx: MysqlQueryable) => Promise<T>): Promise<T> {
    const connection = await this.checkout((pool) => pool.getConnection());
    const on: MysqlQueryable = { query: async (sql, values) => toResult(await connection.query(sql, values)) };
    let broken = false;
    try {
      // The store's own transactions are a few statements long; one frozen mid-way (its worker
      // stopped) must not keep a shard row locked from every other worker for long.
      await connection.query(boundIdleWait(FROZEN_SESSION_MS));
      await connection.query('START TRANSACTION');
      const result = await work(on);
      await connection.query('COMMIT');
      // After the COMMIT: a failure here leaves the work done; the connection is closed instead.
      await connection.query(RESTORE_WAIT).catch(() => {
        broken = true;
      });
      return result;
    } catch (error) {
      broken = isFatalMysqlError(error) || isTransientMysqlError(error);
      if (!broken) {
        await connection.query('ROLLBACK').catch(() => {
          broken = true;
        });
        await connection.query(RESTORE_WAIT).catch(() => {
          broken = true;
        });
      }
      throw this.wrap(error);
    } finally {
      // A connection whose session failed is closed, never handed out again.
      if (broken) connection.destroy();
      else connection.release();
    }
  }
}
