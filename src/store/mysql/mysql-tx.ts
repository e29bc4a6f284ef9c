import { RowsLockedError, StoreError, StoreUnavailableError } from '../../errors.ts';
import type { Lease, SqlHandle, Tx } from '../store.ts';
import { describeDriverError } from '../transient.ts';
import {
  boundTxSession,
  FROZEN_SESSION_MS,
  isFatalMysqlError,
  isTransientMysqlError,
  type MysqlConnection,
  type MysqlDriver,
  type MysqlPool,
  type MysqlQueryable,
  type MysqlResult,
  quoteName,
  RESTORE_WAIT,
  toResult,
} from './mysql-driver.ts';

/**
 * The job's unit of work on MySQL/MariaDB: one pooled connection, checked out and
 * `START TRANSACTION`-ed on first use and held until the checkpoint commits or rolls back.
 * Heartbeats, the effect journal and the runner's other calls use other connections of the pool,
 * so they never wait behind the job's writes.
 *
 * Unlike PostgreSQL, MySQL ends a transaction by itself on a deadlock (rolled back whole) and on
 * DDL or LOCK TABLES (committed): the session then carries on in autocommit, where later
 * `ctx.tx` writes would commit without their checkpoint. So every write's reply is checked for
 * the server's in-transaction flag, and a transaction that ended under us refuses all further use.
 *
 * Bounded by the lease, as on PostgreSQL (see postgres-tx.ts): the session's `wait_timeout` and
 * `innodb_lock_wait_timeout` are the lease (at least FROZEN_SESSION_MS), so a worker cut off with
 * its transaction open loses it a lease later, and its shard's next owner waits for its rows no
 * longer than that (`RowsLockedError`: claimed again, not an outage); heartbeats `touch` an idle
 * transaction so a live worker's is never ended.
 */
export class MysqlTx implements Tx, MysqlQueryable {
  readonly lease: Lease;
  readonly sql: SqlHandle;
  readonly #pool: () => Promise<MysqlPool>;
  readonly #location: string;
  #connection: Promise<MysqlConnection> | undefined;
  /** Set when the connection or the transaction failed under us: nothing more runs on it. */
  #broken: Error | undefined;
  /** The session's idle and lock waits were bounded: put them back before reuse. */
  boundWait = false;
  /** Statements sent and not answered yet; a heartbeat's touch is needed only when there are none. */
  #inFlight = 0;
  #touching: Promise<unknown> | undefined;
  active = true;

  constructor(lease: Lease, pool: () => Promise<MysqlPool>, location: string) {
    this.lease = lease;
    this.#pool = pool;
    this.#location = location;
    this.sql = {
      dialect: 'mysql',
      query: async <Row>(text: string, params: unknown[] = []) => {
        const result = await this.query(text, params);
        return { rows: result.rows as Row[], rowCount: result.inTransaction === undefined ? result.rows.length : result.affectedRows };
      },
    };
  }

  get begun(): boolean {
    return this.#connection !== undefined;
  }

  /** The transaction's connection; checked out and started once (concurrent records share it). */
  connection(): Promise<MysqlConnection> {
    if (!this.active) return Promise.reject(new StoreError('this transaction has already been committed or rolled back'));
    this.#connection ??= (async () => {
      const connection = await (await this.#pool()).getConnection();
      try {
        this.boundWait = true;
        await connection.query(boundTxSession(this.lease.leaseMs));
        await connection.query('START TRANSACTION');
      } catch (error) {
        this.#broken = error as Error;
        connection.destroy();
        throw error;
      }
      return connection;
    })();
    return this.#connection;
  }

  async query(text: string, params: unknown[] = []): Promise<MysqlResult> {
    if (this.#broken !== undefined) throw this.wrap(this.#broken);
    let result: MysqlResult;
    this.#inFlight++;
    try {
      if (this.#touching !== undefined) await this.#touching;
      result = toResult(await (await this.connection()).query(text, params));
    } catch (error) {
      throw this.wrap(error);
    } finally {
      this.#inFlight--;
    }
    if (result.inTransaction === false) {
      this.#broken = new StoreError(
        `the statement ${JSON.stringify(text.slice(0, 60))} ended the job's transaction (MySQL commits DDL and LOCK TABLES by itself); ` +
          'run such statements outside ctx.tx, before the job starts',
      );
      throw this.#broken;
    }
    return result;
  }

  /** Called by each heartbeat: an idle transaction gets a `SELECT 1`, so its idle bound counts from the last heartbeat. */
  touch(): void {
    if (!this.active || this.#connection === undefined || this.#broken !== undefined || this.#inFlight > 0 || this.#touching !== undefined) return;
    const connection = this.#connection;
    this.#touching = (async () => (await connection).query('SELECT 1'))()
      .catch(() => undefined)
      .finally(() => {
        this.#touching = undefined;
      });
  }

  /**
   * Errors that mean "connection gone" or "transaction rolled back whole" (a deadlock) become
   * StoreUnavailableError: the chunk is lost, the shard run ends and resumes from its checkpoint.
   * A lock wait past its bound is a RowsLockedError: a lease matter, the shard is claimed again.
   */
  wrap(error: unknown): unknown {
    if (error instanceof StoreError || error instanceof StoreUnavailableError) return error;
    if ((error as { code?: unknown } | null)?.code === 'ER_LOCK_WAIT_TIMEOUT') {
      this.#broken ??= error as Error;
      return new RowsLockedError(
        `rows this shard writes stayed locked by another session for over ${Math.ceil(Math.max(this.lease.leaseMs, FROZEN_SESSION_MS) / 1000)} s (most likely its previous holder, cut off)`,
        { cause: error },
      );
    }
    if (!isTransientMysqlError(error) && !isFatalMysqlError(error)) return error;
    this.#broken ??= error as Error;
    return new StoreUnavailableError(`lost the transaction on the MySQL store ${this.#location}: ${describeDriverError(error)}`, { cause: error });
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
      if (commit && this.#broken !== undefined) throw this.#broken;
      await connection.query(commit ? 'COMMIT' : 'ROLLBACK');
    } catch (error) {
      this.#broken ??= error as Error;
      if (commit) throw this.wrap(error);
    } finally {
      // After the COMMIT: a failure here leaves the commit standing; the connection is closed.
      if (this.boundWait && this.#broken === undefined) {
        await connection.query(RESTORE_WAIT).catch((error: Error) => {
          this.#broken = error;
        });
      }
      // A connection whose transaction or session failed is closed, never handed out again.
      if (this.#broken === undefined) connection.release();
      else connection.destroy();
    }
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
export function ownTx(driver: MysqlDriver, tx: Tx): MysqlTx {
  if (!(tx instanceof MysqlTx) || !driver.openTxs.has(tx) || !tx.active) throw new StoreError('this transaction is not open on this store');
  return tx;
}

/**
 * Runs the last statements of the job's transaction, then commits it, or rolls it back when
 * `work` answers `commit: false` or throws; either way the transaction is over.
 */
export async function finishTx<T>(driver: MysqlDriver, tx: Tx, work: (on: MysqlQueryable) => Promise<{ result: T; commit: boolean }>): Promise<T> {
  const mysqlTx = ownTx(driver, tx);
  try {
    const { result, commit } = await work(mysqlTx);
    await mysqlTx.end(commit);
    return result;
  } catch (error) {
    await mysqlTx.end(false).catch(() => undefined);
    throw driver.wrap(mysqlTx.wrap(error));
  } finally {
    driver.openTxs.delete(mysqlTx);
  }
}
