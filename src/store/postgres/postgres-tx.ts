import { StoreError, StoreUnavailableError } from '../../errors.ts';
import type { Lease, SqlHandle, Tx } from '../store.ts';
import { describeDriverError, isTransientStoreError } from '../transient.ts';
import { type PgPool, type PgPoolClient, type PgQueryable, type PgResult, type PostgresDriver, quoteName } from './postgres-driver.ts';

/**
 * The job's unit of work on PostgreSQL: one pooled connection, checked out and `BEGIN`-ed on
 * first use and held until the checkpoint commits or rolls back. Heartbeats and the runner's
 * other calls use other connections of the pool, so they never wait behind the job's writes.
 */
export class PostgresTx implements Tx {
  readonly lease: Lease;
  readonly sql: SqlHandle;
  readonly #pool: () => Promise<PgPool>;
  readonly #location: string;
  #client: Promise<PgPoolClient> | undefined;
  /** Set when the connection failed under us: the client is destroyed, not reused. */
  #broken: Error | undefined;
  active = true;

  constructor(lease: Lease, pool: () => Promise<PgPool>, location: string) {
    this.lease = lease;
    this.#pool = pool;
    this.#location = location;
    this.sql = {
      dialect: 'postgres',
      query: async <Row>(text: string, params: unknown[] = []) => {
        const result = await this.query(text, params);
        return { rows: result.rows as Row[], rowCount: result.rowCount ?? result.rows.length };
      },
    };
  }

  get begun(): boolean {
    return this.#client !== undefined;
  }

  readonly #onError = (error: Error) => {
    this.#broken = error;
  };

  /** The transaction's connection; checked out and BEGIN-ed once (concurrent records share it). */
  client(): Promise<PgPoolClient> {
    if (!this.active) return Promise.reject(new StoreError('this transaction has already been committed or rolled back'));
    this.#client ??= (async () => {
      const client = await (await this.#pool()).connect();
      client.on('error', this.#onError);
      try {
        await client.query('BEGIN');
      } catch (error) {
        this.#broken = error as Error;
        this.#releaseClient(client);
        throw error;
      }
      return client;
    })();
    return this.#client;
  }

  async query(text: string, params: unknown[] = []): Promise<PgResult> {
    try {
      return await (await this.client()).query(text, params);
    } catch (error) {
      throw this.wrap(error);
    }
  }

  /** Driver errors that mean "connection gone" become StoreUnavailableError (retried by the runner). */
  wrap(error: unknown): unknown {
    if (error instanceof StoreError || !isTransientStoreError(error)) return error;
    this.#broken ??= error as Error;
    return new StoreUnavailableError(`lost the connection to the PostgreSQL store ${this.#location}: ${describeDriverError(error)}`, { cause: error });
  }

  /** Roll back (if begun) and give the connection back; safe to call twice. */
  async end(commit: boolean): Promise<void> {
    if (!this.active) return;
    this.active = false;
    const pending = this.#client;
    this.#client = undefined;
    if (pending === undefined) return;
    const client = await pending.catch(() => undefined);
    if (client === undefined) return;
    try {
      await client.query(commit ? 'COMMIT' : 'ROLLBACK');
    } catch (error) {
      this.#broken ??= error as Error;
      if (commit) throw this.wrap(error);
    } finally {
      this.#releaseClient(client);
    }
  }

  #releaseClient(client: PgPoolClient): void {
    client.off('error', this.#onError);
    client.release(this.#broken ?? false);
  }

  async savepoint(name: string): Promise<void> {
    await this.query(`SAVEPOINT ${quoteName(name)}`);
  }
  async releaseSavepoint(name: string): Promise<void> {
    if (this.begun) await this.query(`RELEASE SAVEPOINT ${quoteName(name)}`);
  }
  async rollbackToSavepoint(name: string): Promise<void> {
    if (!this.begun) return;
    await this.query(`ROLLBACK TO SAVEPOINT ${quoteName(name)}`);
    await this.query(`RELEASE SAVEPOINT ${quoteName(name)}`);
  }
}

/** The store's own open transaction behind `tx`, or a StoreError (committed, rolled back, another store's). */
export function ownTx(driver: PostgresDriver, tx: Tx): PostgresTx {
  if (!(tx instanceof PostgresTx) || !driver.openTxs.has(tx) || !tx.active) throw new StoreError('this transaction is not open on this store');
  return tx;
}

/** The job's transaction as a queryable, with the store's error handling. */
export function inTx(driver: PostgresDriver, tx: Tx): PgQueryable {
  const pgTx = ownTx(driver, tx);
  return { query: async (sql, values) => ({ rows: await driver.query(sql, values, { query: (text, args) => pgTx.query(text, args) }), rowCount: null }) };
}

/**
 * Runs the last statements of the job's transaction, then commits it, or rolls it back when
 * `work` answers `commit: false` or throws; either way the transaction is over.
 */
export async function finishTx<T>(driver: PostgresDriver, tx: Tx, work: (on: PgQueryable) => Promise<{ result: T; commit: boolean }>): Promise<T> {
  const pgTx = ownTx(driver, tx);
  try {
    const { result, commit } = await work(inTx(driver, tx));
    await pgTx.end(commit);
    return result;
  } catch (error) {
    await pgTx.end(false).catch(() => undefined);
    throw driver.wrap(pgTx.wrap(error));
  } finally {
    driver.openTxs.delete(pgTx);
  }
}
