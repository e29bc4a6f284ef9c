import { StoreError } from '../../errors.ts';
import { SqlTx } from '../sql/sql-tx.ts';
import type { Lease } from '../store.ts';
import { mysqlDialect } from './mysql-dialect.ts';
import { boundTxSession, type MysqlConnection, type MysqlPool, type MysqlResult, RESTORE_WAIT, toResult } from './mysql-driver.ts';

/**
 * The job's transaction on MySQL/MariaDB (the flow is SqlTx's): the session's `wait_timeout` and
 * `innodb_lock_wait_timeout` set to the lease before `START TRANSACTION`, put back before the
 * connection goes back to the pool.
 *
 * Unlike PostgreSQL, MySQL ends a transaction by itself on a deadlock (rolled back whole) and on
 * DDL or LOCK TABLES (committed): the session then carries on in autocommit, where later
 * `ctx.tx` writes would commit without their checkpoint. So every write's reply is checked for
 * the server's in-transaction flag, and a transaction that ended under us refuses all further use.
 */
export class MysqlTx extends SqlTx<MysqlConnection> {
  readonly #pool: () => Promise<MysqlPool>;
  /** The session's idle and lock waits were bounded: put them back before reuse. */
  boundWait = false;

  constructor(lease: Lease, pool: () => Promise<MysqlPool>, location: string) {
    super(lease, mysqlDialect, location);
    this.#pool = pool;
  }

  protected async open(): Promise<MysqlConnection> {
    const connection = await (await this.#pool()).getConnection();
    try {
      this.boundWait = true;
      await connection.query(boundTxSession(this.lease.leaseMs));
      await connection.query('START TRANSACTION');
    } catch (error) {
      this.broken = error as Error;
      connection.destroy();
      throw error;
    }
    return connection;
  }

  override async query(text: string, params: unknown[] = []): Promise<MysqlResult> {
    if (this.broken !== undefined) throw this.wrap(this.broken);
    const result = (await super.query(text, params)) as MysqlResult;
    if (!this.dialect.transactionalDdl && result.inTransaction === false) {
      this.broken = new StoreError(
        `the statement ${JSON.stringify(text.slice(0, 60))} ended the job's transaction (MySQL commits DDL and LOCK TABLES by itself); ` +
          'run such statements outside ctx.tx, before the job starts',
      );
      throw this.broken;
    }
    return result;
  }

  protected async send(connection: MysqlConnection, sql: string, values: unknown[]): Promise<MysqlResult> {
    return toResult(await connection.query(sql, values));
  }

  /** After the COMMIT: a failure here leaves the commit standing; the connection is closed. */
  protected async release(connection: MysqlConnection): Promise<void> {
    if (this.boundWait && this.broken === undefined) {
      await connection.query(RESTORE_WAIT).catch((error: Error) => {
        this.broken = error;
      });
    }
    // A connection whose transaction or session failed is closed, never handed out again.
    if (this.broken === undefined) connection.release();
    else connection.destroy();
  }

  /** MysqlTx.release puts the setting back after COMMIT. */
  async limitIdle(ms: number): Promise<void> {
    this.boundWait = true;
    await this.query(mysqlDialect.idleLimit(ms));
  }
}
