import { createHash } from 'node:crypto';
import type { JsonValue } from '../../json.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectJournal, EffectScope, NewEvent } from '../store.ts';
import { type MysqlDriver, type MysqlQueryable, NOW } from './mysql-driver.ts';
import { appendChained } from './mysql-history.ts';

/** Effect keys are found by their sha256: a key can be longer than an index allows. */
function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * The effect journal of a MySQL/MariaDB store, written on pooled connections, never in the job's
 * transaction: an intent is durable before the effect runs, whatever becomes of the chunk. An
 * entry and the events recording it commit together in one short transaction.
 */
export class MysqlJournal implements EffectJournal {
  readonly #db: MysqlDriver;

  constructor(driver: MysqlDriver) {
    this.#db = driver;
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.p}effects WHERE instance_id = ? AND generation = ? AND key_hash = ?`, [
      scope.instanceId,
      scope.generation,
      keyHash(key),
    ]);
    const row = rows[0];
    return row === undefined ? undefined : toEffect(key, row);
  }

  /** One statement in autocommit, or with `events` in a short transaction of its own. */
  async #write(scope: EffectScope, events: NewEvent[], statement: (on: MysqlQueryable) => Promise<unknown>): Promise<void> {
    if (events.length === 0) {
      await statement(this.#db.any);
      return;
    }
    await this.#db.transaction(async (on) => {
      await statement(on);
      await appendChained(this.#db, on, scope.instanceId, scope.generation, events);
    });
  }

  async effectIntent(scope: EffectScope, key: string, events: NewEvent[] = []): Promise<void> {
    await this.#write(scope, events, (on) =>
      on.query(
        `INSERT INTO ${this.#db.p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at) VALUES (?, ?, ?, ?, 'intent', 1, ${NOW})
       ON DUPLICATE KEY UPDATE status = 'intent', attempts = attempts + 1, updated_at = ${NOW}`,
        [scope.instanceId, scope.generation, keyHash(key), key],
      ),
    );
  }

  async effectDone(scope: EffectScope, key: string, result: JsonValue | null, events: NewEvent[] = []): Promise<void> {
    await this.#write(scope, events, (on) =>
      on.query(
        `INSERT INTO ${this.#db.p}effects (instance_id, generation, key_hash, effect_key, status, result, attempts, updated_at) VALUES (?, ?, ?, ?, 'done', ?, 1, ${NOW})
       ON DUPLICATE KEY UPDATE status = 'done', result = ?, updated_at = ${NOW}`,
        [scope.instanceId, scope.generation, keyHash(key), key, JSON.stringify(result), JSON.stringify(result)],
      ),
    );
  }

  async effectFailed(scope: EffectScope, key: string, events: NewEvent[] = []): Promise<void> {
    await this.#write(scope, events, (on) =>
      on.query(`DELETE FROM ${this.#db.p}effects WHERE instance_id = ? AND generation = ? AND key_hash = ? AND status = 'intent'`, [
        scope.instanceId,
        scope.generation,
        keyHash(key),
      ]),
    );
  }
}
