import { StoreError, StoreUnavailableError } from '../../errors.ts';
import type { Lease, SqlHandle, Tx } from '../store.ts';
import { describeDriverError } from '../transient.ts';
import {
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
 */
export class MysqlTx implements Tx, MysqlQueryable {
  readonly lease: Lease;
  readonly sql: SqlHandle;
  readonly #pool: () => Promise<MysqlPool>;
  readonly #location: string;
  #connection: Promise<MysqlConnection> | undefined;
  /** Set when the connection or the transaction failed under us: nothing more runs on it. */
  #broken: Error | undefined;
  /** The session's idle wait was shortened for the commit: put it back before reuse. */
  boundWait = false;
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
    try {
      result = toResult(await (await this.connection()).query(text, params));
    } catch (error) {
      throw this.wrap(error);
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

  /**
   * Errors that mean "connection gone" or "transaction rolled back whole" (a deadlock) become
   * StoreUnavailableError: the chunk is lost, the shard run ends and resumes from its checkpoint.
   */
  wrap(error: unknown): unknown {
    if (error instanceof StoreError || error instanceof StoreUnavailableError) return error;
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
