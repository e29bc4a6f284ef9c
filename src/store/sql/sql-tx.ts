import { RowsLockedError, StoreError, StoreUnavailableError } from '../../errors.ts';
import type { Lease, SqlHandle } from '../store.ts';
import { describeDriverError } from '../transient.ts';
import type { Dialect } from './dialect.ts';
import type { SqlJobTx, SqlResult } from './sql-driver.ts';

/**
 * The job's unit of work on a SQL server: one pooled connection, checked out and begun on first
 * use and held until the checkpoint commits or rolls back. Heartbeats, the effect journal and
 * the runner's other calls use other connections of the pool, so they never wait behind the
 * job's writes.
 *
 * Bounded by the lease, so a lost or partitioned worker cannot block its shard's next owner: the
 * server ends the session once it has been idle in its transaction for a lease (at least the
 * dialect's frozenSessionMs), rolling it back and freeing its row locks; each heartbeat
 * `touch`es an idle transaction so a live worker's session, however long its records take, is
 * never taken for a lost one. A statement waits for another session's row locks no longer than
 * that bound either: a `RowsLockedError` ends the shard run as a lease matter, and the shard is
 * claimed again. Each server's tx says how it checks a connection out, begins, bounds and gives
 * it back (postgres-tx.ts, mysql-tx.ts).
 */
export abstract class SqlTx<Connection> implements SqlJobTx {
  readonly lease: Lease;
  readonly sql: SqlHandle;
  readonly dialect: Dialect;
  readonly location: string;
  active = true;
  /** Set when the connection or the transaction failed under us: the connection is closed, not reused. */
  broken: Error | undefined;
  #connection: Promise<Connection> | undefined;
  /** Statements sent and not answered yet; a heartbeat's touch is needed only when there are none. */
  #inFlight = 0;
  /** The touch in flight: statements wait for it (a connection runs one statement at a time). */
  #touching: Promise<unknown> | undefined;

  constructor(lease: Lease, dialect: Dialect, location: string) {
    this.lease = lease;
    this.dialect = dialect;
    this.location = location;
    this.sql = {
      dialect: dialect.name,
      query: async <R>(text: string, params: unknown[] = []) => {
        const result = await this.query(text, params);
        return { rows: result.rows as R[], rowCount: result.affectedRows };
      },
    };
  }

  /** A pooled connection, checked out and begun; one that fails here is given back closed. */
  protected abstract open(): Promise<Connection>;
  /** One statement on the connection. */
  protected abstract send(connection: Connection, sql: string, values: unknown[]): Promise<SqlResult>;
  /** Gives the connection back, or closes it when `broken` is set. */
  protected abstract release(connection: Connection): Promise<void>;
  abstract limitIdle(ms: number): Promise<void>;

  get begun(): boolean {
    return this.#connection !== undefined;
  }

  /** The transaction's connection; checked out and begun once (concurrent records share it). */
  connection(): Promise<Connection> {
    if (!this.active) return Promise.reject(new StoreError('this transaction has already been committed or rolled back'));
    this.#connection ??= this.open();
    return this.#connection;
  }

  async query(text: string, params: unknown[] = []): Promise<SqlResult> {
    this.#inFlight++;
    try {
      if (this.#touching !== undefined) await this.#touching;
      return await this.send(await this.connection(), text, params);
    } catch (error) {
      throw this.wrap(error);
    } finally {
      this.#inFlight--;
    }
  }

  /**
   * Called by each heartbeat: a transaction begun and idle gets a `SELECT 1`, so the server's
   * idle bound counts from the last heartbeat, not from the last record's write. A worker cut
   * off from the server cannot touch it, and its session ends a lease later.
   */
  touch(): void {
    if (!this.active || this.#connection === undefined || this.broken !== undefined || this.#inFlight > 0 || this.#touching !== undefined) return;
    const connection = this.#connection;
    this.#touching = (async () => this.send(await connection, 'SELECT 1', []))()
      .catch(() => undefined)
      .finally(() => {
        this.#touching = undefined;
      });
  }

  /**
   * Errors that mean "connection gone" or "transaction rolled back whole" become
   * StoreUnavailableError: the chunk is lost, the shard run ends and resumes from its checkpoint.
   * A lock wait past its bound is a RowsLockedError: a lease matter, the shard is claimed again.
   */
  wrap(error: unknown): unknown {
    if (error instanceof StoreError || error instanceof StoreUnavailableError) return error;
    if (this.dialect.isLockTimeout(error)) {
      this.broken ??= error as Error;
      const seconds = Math.ceil(Math.max(this.lease.leaseMs, this.dialect.frozenSessionMs) / 1000);
      return new RowsLockedError(`rows this shard writes stayed locked by another session for over ${seconds} s (most likely its previous holder, cut off)`, {
        cause: error,
      });
    }
    if (!this.dialect.isTransient(error) && !this.dialect.isFatal(error)) return error;
    this.broken ??= error as Error;
    return new StoreUnavailableError(`lost the transaction on the ${this.dialect.title} store ${this.location}: ${describeDriverError(error)}`, {
      cause: error,
    });
  }

  /** Commit or roll back (if begun) and give the connection back; safe to call twice. */
  async end(commit: boolean): Promise<void> {
    if (!this.active) return;
    this.active = false;
    const pending = this.#connection;
    this.#connection = undefined;
    if (pending === undefined) return;
    const connection = await pending.catch(() => undefined);
    if (connection === undefined) return;
    if (this.#touching !== undefined) await this.#touching;
    try {
      if (commit && this.broken !== undefined) throw this.broken;
      await this.send(connection, commit ? 'COMMIT' : 'ROLLBACK', []);
    } catch (error) {
      this.broken ??= error as Error;
      if (commit) throw this.wrap(error);
    } finally {
      await this.release(connection);
    }
  }

  async savepoint(name: string): Promise<void> {
    await this.query(`SAVEPOINT ${this.dialect.quote(name)}`);
  }
  async releaseSavepoint(name: string): Promise<void> {
    if (this.begun) await this.query(`RELEASE SAVEPOINT ${this.dialect.quote(name)}`);
  }
  async rollbackToSavepoint(name: string): Promise<void> {
    if (!this.begun) return;
    await this.query(`ROLLBACK TO SAVEPOINT ${this.dialect.quote(name)}`);
    await this.query(`RELEASE SAVEPOINT ${this.dialect.quote(name)}`);
  }
}
