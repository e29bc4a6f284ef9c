import { UsageError } from '../../errors.ts';
import { PooledDriver } from '../sql/pooled-driver.ts';
import type { SqlQueryable, SqlResult } from '../sql/sql-driver.ts';
import type { ChainHead } from '../store-types.ts';
import { isTransientStoreError } from '../transient.ts';
import { postgresDialect } from './postgres-dialect.ts';

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

/** A `pg` result as the shared store flows read it (of several statements, the last's: a migration's). */
export function toResult(result: PgResult | PgResult[]): SqlResult {
  const last = Array.isArray(result) ? result.at(-1) : result;
  const rows = last?.rows ?? [];
  return { rows, affectedRows: last?.rowCount ?? rows.length, insertId: 0 };
}

/**
 * What every concern of the PostgreSQL store shares: the pool, the schema prefix, one-statement
 * queries and short transactions with the store's error handling, and the open job transactions
 * (so close can end them). The shared flows (src/store/sql/) and the journal run over it.
 */
export class PostgresDriver extends PooledDriver<PgPool> {
  readonly dialect = postgresDialect;
  readonly schema: string;
  /** The chain head this process last wrote, per instance: the fast path of appendChained. */
  readonly chainHeads = new Map<number, ChainHead>();

  constructor(options: PostgresStoreOptions) {
    const schema = options.schema ?? DEFAULT_PG_SCHEMA;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
      throw new UsageError(`the schema name ${JSON.stringify(schema)} is not valid; use letters, digits and '_' (e.g. ?schema=checkpointed)`);
    }
    const { connectionString } = options;
    super({
      location: options.location ?? (options.pool ? `postgres (schema ${schema})` : String(connectionString)),
      prefix: `${quoteName(schema)}.`,
      pool: options.pool,
      createPool: connectionString === undefined ? undefined : () => createPgPool({ connectionString, max: options.maxConnections ?? 4 }),
      missing: 'a PostgreSQL store needs a connection string or a pool',
      chainKey: options.chainKey,
    });
    this.schema = schema;
  }

  /** One statement on any pooled connection; driver errors become the store's. */
  async run(sql: string, values: unknown[] = []): Promise<SqlResult> {
    try {
      return toResult(await (await this.pool()).query(postgresDialect.parameters(sql), values));
    } catch (error) {
      throw this.wrap(error);
    }
  }

  /** Runs `work` in its own short transaction on one connection. */
  async transaction<T>(work: (on: SqlQueryable) => Promise<T>): Promise<T> {
    const client = await this.checkout((pool) => pool.connect());
    let broken: Error | undefined;
    const onError = (error: Error) => {
      broken = error;
    };
    client.on('error', onError);
    const on: SqlQueryable = { query: async (sql, values) => toResult(await client.query(postgresDialect.parameters(sql), values)) };
    try {
      await client.query('BEGIN');
      // The store's own transactions are a few statements long; one frozen mid-way (its worker
      // stopped) must not keep a shard row locked from every other worker for long.
      await client.query(postgresDialect.idleLimit(FROZEN_SESSION_MS));
      const result = await work(on);
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
}
