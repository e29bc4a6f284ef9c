import { UsageError } from '../../errors.ts';

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
  off(event: 'error', listener: (error: Error) => void): unknown;
}

export interface PgPool extends PgQueryable {
  connect(): Promise<PgPoolClient>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

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
