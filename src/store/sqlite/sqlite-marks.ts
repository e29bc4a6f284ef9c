import { existsSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { StoreError } from '../../errors.ts';
import type { ProgressMark } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

/**
 * Progress marks of a SQLite store's runs, kept in the effect journal's file (`<store>.effects`)
 * on a connection of their own. Why not the runs table: a job writing through `ctx.tx` keeps the
 * main file's connection inside its open transaction until the next checkpoint, so a mark
 * written there would commit with the chunk or not at all — and a SIGKILL would take it, which
 * is how a run that redid 6,000 records used to report 0. Here each mark is a short autocommit
 * transaction, in the OS's hands when the call returns; reaping a dead run copies it into its row.
 */
export class SqliteProgressMarks {
  readonly #store: SqliteDriver;
  readonly #path: string;
  #storeId: string | undefined;
  #db: DatabaseSync | undefined;
  readonly #statements = new Map<string, StatementSync>();

  constructor(driver: SqliteDriver) {
    this.#store = driver;
    this.#path = driver.path === ':memory:' ? ':memory:' : `${driver.path}.effects`;
    driver.onClose.push(() => this.#close());
  }

  /** The main file's random id: marks left beside a deleted and recreated store never answer for it. */
  get #id(): string {
    this.#storeId ??= String(this.#store.get("SELECT value FROM ckpt_meta WHERE key = 'store_id'")?.value ?? 'unknown');
    return this.#storeId;
  }

  get #conn(): DatabaseSync {
    if (this.#db !== undefined) return this.#db;
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(this.#path);
      db.exec('PRAGMA busy_timeout = 10000');
      if (this.#path !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
      // NORMAL, not FULL: in WAL mode a commit is then written to the OS but not fsynced, so it
      // survives the process being killed (what marks are for: SIGKILL, OOM, eviction) at ~50 µs
      // instead of ~2 ms. A power loss or kernel crash may lose the last marks; see docs/DESIGN.md.
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec(`CREATE TABLE IF NOT EXISTS progress_marks (
        store_id TEXT NOT NULL, run_id INTEGER NOT NULL, ceiling INTEGER NOT NULL, step INTEGER NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (store_id, run_id)
      )`);
    } catch (error) {
      throw new StoreError(`cannot open the progress marks in ${this.#path}: ${(error as Error).message}; check that it is writable`, { cause: error });
    }
    this.#db = db;
    return db;
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#conn.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  write(runId: number, mark: ProgressMark): void {
    this.#statement(
      `INSERT INTO progress_marks (store_id, run_id, ceiling, step, at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET ceiling = excluded.ceiling, step = excluded.step, at = excluded.at`,
    ).run(this.#id, runId, mark.ceiling, mark.step, Date.now());
  }

  /** The run's last mark, if it wrote one (a store whose runs never marked has no file to open). */
  read(runId: number): ProgressMark | undefined {
    if (this.#db === undefined && this.#path !== ':memory:' && !existsSync(this.#path)) return undefined;
    const row = this.#statement('SELECT ceiling, step FROM progress_marks WHERE store_id = ? AND run_id = ?').get(this.#id, runId);
    return row === undefined ? undefined : { ceiling: Number(row.ceiling), step: Number(row.step) };
  }

  #close(): void {
    this.#statements.clear();
    this.#db?.close();
    this.#db = undefined;
  }
}
