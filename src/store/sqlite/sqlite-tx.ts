import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { StoreError } from '../../errors.ts';
import type { Lease, SqlHandle, Tx } from '../store.ts';
import { sqliteDialect } from './sqlite-dialect.ts';
import type { PreparedStatement, SqliteDriver } from './sqlite-driver.ts';

/** The job's unit of work on SQLite: BEGIN IMMEDIATE on first use, COMMIT with the checkpoint. */
export class SqliteTx implements Tx {
  readonly lease: Lease;
  readonly sql: SqlHandle;
  readonly #db: DatabaseSync;
  readonly #statements: Map<string, PreparedStatement>;
  active = true;
  begun = false;

  constructor(lease: Lease, db: DatabaseSync, statements: Map<string, PreparedStatement>) {
    this.lease = lease;
    this.#db = db;
    this.#statements = statements;
    this.sql = {
      dialect: 'sqlite',
      query: async <R>(sql: string, params: unknown[] = []) => {
        this.ensureBegun();
        const { statement, returnsRows } = this.#prepare(sql);
        if (!returnsRows) return { rows: [], rowCount: Number(statement.run(...(params as SQLInputValue[])).changes) };
        const rows = statement.all(...(params as SQLInputValue[])) as R[];
        return { rows, rowCount: rows.length };
      },
    };
  }

  /** Statements are prepared once per store and reused: a job runs the same few per record. */
  #prepare(sql: string): PreparedStatement {
    let prepared = this.#statements.get(sql);
    if (prepared === undefined) {
      if (this.#statements.size > 100) this.#statements.clear();
      const statement = this.#db.prepare(sql);
      prepared = { statement, returnsRows: statement.columns().length > 0 };
      this.#statements.set(sql, prepared);
    }
    return prepared;
  }

  #exec(sql: string): void {
    this.#prepare(sql).statement.run();
  }

  ensureBegun(): void {
    if (!this.active) throw new StoreError('this transaction has already been committed or rolled back');
    if (this.begun) return;
    this.#db.exec('BEGIN IMMEDIATE');
    this.begun = true;
  }

  end(): void {
    this.active = false;
  }

  async savepoint(name: string): Promise<void> {
    this.ensureBegun();
    this.#exec(savepointSql(name).save);
  }
  async releaseSavepoint(name: string): Promise<void> {
    if (this.begun) this.#exec(savepointSql(name).release);
  }
  async rollbackToSavepoint(name: string): Promise<void> {
    if (!this.begun) return;
    const sql = savepointSql(name);
    this.#exec(sql.rollback);
    this.#exec(sql.release);
  }
}

/** The store's own open transaction behind `tx`, or a StoreError (committed, rolled back, another store's). */
export function ownTx(driver: SqliteDriver, tx: Tx): SqliteTx {
  if (!(tx instanceof SqliteTx) || tx !== driver.openTx || !tx.active) throw new StoreError('this transaction is not open on this store');
  return tx;
}

/**
 * Runs the last statements of the job's transaction, then commits it, or rolls it back when
 * `work` answers `commit: false` or throws; either way the transaction is over.
 */
export function finishTx<T>(driver: SqliteDriver, tx: Tx, work: () => { result: T; commit: boolean }): T {
  const sqliteTx = ownTx(driver, tx);
  sqliteTx.ensureBegun();
  const db = driver.conn;
  try {
    const { result, commit } = work();
    db.exec(commit ? 'COMMIT' : 'ROLLBACK');
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  } finally {
    sqliteTx.end();
  }
}

const savepointStatements = new Map<string, { save: string; release: string; rollback: string }>();

/** The SQL of a savepoint, built once per name (a job uses one name, once per record). */
function savepointSql(name: string): { save: string; release: string; rollback: string } {
  let sql = savepointStatements.get(name);
  if (sql === undefined) {
    const quoted = sqliteDialect.quote(name);
    sql = { save: `SAVEPOINT ${quoted}`, release: `RELEASE SAVEPOINT ${quoted}`, rollback: `ROLLBACK TO SAVEPOINT ${quoted}` };
    savepointStatements.set(name, sql);
  }
  return sql;
}
