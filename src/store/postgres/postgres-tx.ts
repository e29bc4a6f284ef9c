import { RowsLockedError, StoreError, StoreUnavailableError } from '../../errors.ts';
import type { Lease, SqlHandle, Tx } from '../store.ts';
import { describeDriverError, isTransientStoreError } from '../transient.ts';
import { FROZEN_SESSION_MS, type PgPool, type PgPoolClient, type PgQueryable, type PgResult, type PostgresDriver, quoteName } from './postgres-driver.ts';

/**
 * The job's unit of work on PostgreSQL: one pooled connection, checked out and `BEGIN`-ed on
 * first use and held until the checkpoint commits or rolls back. Heartbeats and the runner's
 * other calls use other connections of the pool, so they never wait behind the job's writes.
 *
 * Bounded by the lease, so a lost or partitioned worker cannot block its shard's next owner:
 * the server ends the session once it has been idle in its transaction for a lease (at least
 * FROZEN_SESSION_MS), rolling it back and freeing its row locks, and its TCP keepalives are
 * shortened to match; each heartbeat `touch`es an idle transaction so a live worker's session,
 * however long its records take, is never taken for a lost one. A statement waits for another
 * session's row locks no longer than that bound either (`lock_timeout`): a `RowsLockedError`
 * ends the shard run as a lease matter, and the shard is claimed again.
 */
export class PostgresTx implements Tx {
  readonly lease: Lease;
  readonly sql: SqlHandle;
  readonly #pool: () => Promise<PgPool>;
  readonly #location: string;
  #client: Promise<PgPoolClient> | undefined;
  /** Set when the connection failed under us: the client is destroyed, not reused. */
  #broken: Error | undefined;
  /** Statements sent and not answered yet; a heartbeat's touch is needed only when there are none. */
  #inFlight = 0;
  /** The touch in flight: statements wait for it (a pg client runs one query at a time). */
  #touching: Promise<unknown> | undefined;
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
        const boundMs = Math.max(this.lease.leaseMs, FROZEN_SESSION_MS);
        const keepaliveS = String(Math.max(1, Math.ceil(boundMs / 3000)));
        // LOCAL: each ends with the transaction, so the pooled connection goes back as it came.
        await client.query(
          `SELECT set_config('idle_in_transaction_session_timeout', $1, true), set_config('lock_timeout', $1, true),
             set_config('tcp_keepalives_idle', $2, true), set_config('tcp_keepalives_interval', $2, true), set_config('tcp_keepalives_count', '3', true)`,
          [String(boundMs), keepaliveS],
        );
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
    this.#inFlight++;
    try {
      if (this.#touching !== undefined) await this.#touching;
      return await (await this.client()).query(text, params);
    } catch (error) {
      throw this.wrap(error);
    } finally {
      this.#inFlight--;
    }
  }

  /**
   * Called by each heartbeat: a transaction begun and idle gets a `SELECT 1`, so the server's
   * idle-in-transaction bound counts from the last heartbeat, not from the last record's write.
   * A worker cut off from the server cannot touch it, and its session ends a lease later.
   */
  touch(): void {
    if (!this.active || this.#client === undefined || this.#broken !== undefined || this.#inFlight > 0 || this.#touching !== undefined) return;
    const client = this.#client;
    this.#touching = (async () => (await client).query('SELECT 1'))()
      .catch(() => undefined)
      .finally(() => {
        this.#touching = undefined;
      });
  }

  /** Driver errors that mean "connection gone" become StoreUnavailableError (retried by the runner). */
  wrap(error: unknown): unknown {
    if ((error as { code?: unknown } | null)?.code === '55P03') {
      return new RowsLockedError(
        `rows this shard writes stayed locked by another session for over ${Math.round(Math.max(this.lease.leaseMs, FROZEN_SESSION_MS) / 1000)} s (most likely its previous holder, cut off)`,
        { cause: error },
      );
    }
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
    if (this.#touching !== undefined) await this.#touching;
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
