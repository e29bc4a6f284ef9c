import type { SQLInputValue } from 'node:sqlite';
import type { JsonValue } from '../../json.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectJournal, EffectScope, NewEvent } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';
import { appendChained } from './sqlite-history.ts';

/**
 * The effect journal of a SQLite store, in the side file beside it (`<store>.effects`; see
 * SqliteDriver.side for why a second file). Each intent and completion is a short autocommit
 * transaction with synchronous=FULL, durable when the call returns, together with the events
 * that record it in the instance's chain. The journal and the checkpoints need not commit
 * together: the journal is exactly what must survive the chunk being rolled back. Entries are
 * keyed by the main file's random store id, so a side file left beside a deleted and recreated
 * store never answers for it.
 */
export class SqliteJournal implements EffectJournal {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  #key(scope: EffectScope, key: string): SQLInputValue[] {
    return [this.#db.storeId, scope.instanceId, scope.generation, key];
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const row = this.#db
      .sideStatement('SELECT * FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ?')
      .get(...this.#key(scope, key)) as Record<string, unknown> | undefined;
    return row === undefined ? undefined : toEffect(key, row);
  }

  async effectIntent(scope: EffectScope, key: string, events: NewEvent[] = []): Promise<void> {
    this.#db.sideWrite(() => {
      this.#db
        .sideStatement(
          `INSERT INTO effects (store_id, instance_id, generation, key, status, attempts, updated_at) VALUES (?, ?, ?, ?, 'intent', 1, ?)
           ON CONFLICT DO UPDATE SET status = 'intent', attempts = attempts + 1, updated_at = excluded.updated_at`,
        )
        .run(...this.#key(scope, key), Date.now());
      appendChained(this.#db, scope.instanceId, scope.generation, events);
    });
  }

  async effectDone(scope: EffectScope, key: string, result: JsonValue | null, events: NewEvent[] = []): Promise<void> {
    this.#db.sideWrite(() => {
      this.#db
        .sideStatement(
          `INSERT INTO effects (store_id, instance_id, generation, key, status, result, attempts, updated_at) VALUES (?, ?, ?, ?, 'done', ?, 1, ?)
           ON CONFLICT DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at`,
        )
        .run(...this.#key(scope, key), JSON.stringify(result), Date.now());
      appendChained(this.#db, scope.instanceId, scope.generation, events);
    });
  }

  async effectFailed(scope: EffectScope, key: string, events: NewEvent[] = []): Promise<void> {
    this.#db.sideWrite(() => {
      this.#db
        .sideStatement("DELETE FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ? AND status = 'intent'")
        .run(...this.#key(scope, key));
      appendChained(this.#db, scope.instanceId, scope.generation, events);
    });
  }
}
