import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { StoreError } from '../../errors.ts';
import type { JsonValue } from '../../json.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectJournal, EffectScope } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

/**
 * The effect journal of a SQLite store, in a second SQLite file beside it (`<store>.effects`).
 *
 * Why a second file: an effect's intent must be durable before the effect runs, but the store's
 * one connection is usually inside the job's open transaction (it holds the file's write lock
 * until the next checkpoint), so committing the intent there would commit half a chunk, and a
 * second connection to the same file would wait on our own lock. The journal file has its own
 * lock and its own WAL: each intent and completion is a short autocommit transaction with
 * synchronous=FULL, durable when the call returns, whatever the main file is doing. The journal
 * and the checkpoints need not commit together: the journal is exactly what must survive the
 * chunk being rolled back. Entries are keyed by the main file's random store id, so a journal
 * left beside a deleted and recreated store never answers for it.
 */
export class SqliteJournal implements EffectJournal {
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

  get #conn(): DatabaseSync {
    if (this.#db !== undefined) return this.#db;
    // Read from the main file when first needed (it exists once migrated).
    this.#storeId ??= String(this.#store.get("SELECT value FROM ckpt_meta WHERE key = 'store_id'")?.value ?? 'unknown');
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(this.#path);
      db.exec('PRAGMA busy_timeout = 10000');
      if (this.#path !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = FULL');
      db.exec(`CREATE TABLE IF NOT EXISTS effects (
        store_id TEXT NOT NULL, instance_id INTEGER NOT NULL, generation INTEGER NOT NULL, key TEXT NOT NULL,
        status TEXT NOT NULL, result TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL,
        PRIMARY KEY (store_id, instance_id, generation, key)
      )`);
    } catch (error) {
      throw new StoreError(`cannot open the effect journal ${this.#path}: ${(error as Error).message}; check that it is writable`, { cause: error });
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

  #key(scope: EffectScope, key: string): SQLInputValue[] {
    return [this.#storeId ?? 'unknown', scope.instanceId, scope.generation, key];
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const row = this.#statement('SELECT * FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ?').get(...this.#key(scope, key)) as
      | Record<string, unknown>
      | undefined;
    return row === undefined ? undefined : toEffect(key, row);
  }

  async effectIntent(scope: EffectScope, key: string): Promise<void> {
    this.#statement(
      `INSERT INTO effects (store_id, instance_id, generation, key, status, attempts, updated_at) VALUES (?, ?, ?, ?, 'intent', 1, ?)
       ON CONFLICT DO UPDATE SET status = 'intent', attempts = attempts + 1, updated_at = excluded.updated_at`,
    ).run(...this.#key(scope, key), Date.now());
  }

  async effectDone(scope: EffectScope, key: string, result: JsonValue | null): Promise<void> {
    this.#statement(
      `INSERT INTO effects (store_id, instance_id, generation, key, status, result, attempts, updated_at) VALUES (?, ?, ?, ?, 'done', ?, 1, ?)
       ON CONFLICT DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at`,
    ).run(...this.#key(scope, key), JSON.stringify(result), Date.now());
  }

  async effectFailed(scope: EffectScope, key: string): Promise<void> {
    this.#statement("DELETE FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ? AND status = 'intent'").run(
      ...this.#key(scope, key),
    );
  }

  #close(): void {
    this.#statements.clear();
    this.#db?.close();
    this.#db = undefined;
  }
}
