import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';
import { StoreError } from '../../errors.ts';
import type { Lease, SqlHandle, Tx } from '../store.ts';

/** The job's unit of work on SQLite: BEGIN IMMEDIATE on first use, COMMIT with the checkpoint. */
export class SqliteTx implements Tx {
  readonly lease: Lease;
  readonly sql: SqlHandle;
  readonly #db: DatabaseSync;
  readonly #statements: Map<string, StatementSync>;
  active = true;
  begun = false;

  constructor(lease: Lease, db: DatabaseSync, statements: Map<string, StatementSync>) {
    this.lease = lease;
    this.#db = db;
    this.#statements = statements;
    this.sql = {
      dialect: 'sqlite',
      query: async <R>(sql: string, params: unknown[] = []) => {
        this.ensureBegun();
        const statement = this.#prepare(sql);
        if (statement.columns().length === 0) {
          return { rows: [], rowCount: Number(statement.run(...(params as SQLInputValue[])).changes) };
        }
        const rows = statement.all(...(params as SQLInputValue[])) as R[];
        return { rows, rowCount: rows.length };
      },
    };
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      if (this.#statements.size > 100) this.#statements.clear();
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
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
    this.#db.exec(`SAVEPOINT ${quoteName(name)}`);
  }
  async releaseSavepoint(name: string): Promise<void> {
    if (this.begun) this.#db.exec(`RELEASE SAVEPOINT ${quoteName(name)}`);
  }
  async rollbackToSavepoint(name: string): Promise<void> {
    if (this.begun) this.#db.exec(`ROLLBACK TO SAVEPOINT ${quoteName(name)}; RELEASE SAVEPOINT ${quoteName(name)}`);
  }
}

function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
