import { createHash } from 'node:crypto';
import type { JsonValue } from '../../json.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectScope } from '../store.ts';
import { type MysqlQueryable, NOW } from './mysql-driver.ts';

/** Effect keys are found by their sha256: a key can be longer than an index allows. */
function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * The effect journal of a MySQL/MariaDB store. Written on pooled connections in autocommit, never
 * in the job's transaction: an intent must be durable before the effect runs, whatever becomes
 * of the chunk. `p` is the table prefix.
 */
export class MysqlJournal {
  readonly #p: string;

  constructor(prefix: string) {
    this.#p = prefix;
  }

  async get(on: MysqlQueryable, scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const { rows } = await on.query(`SELECT * FROM ${this.#p}effects WHERE instance_id = ? AND generation = ? AND key_hash = ?`, [
      scope.instanceId,
      scope.generation,
      keyHash(key),
    ]);
    const row = rows[0];
    return row === undefined ? undefined : toEffect(key, row);
  }

  async intent(on: MysqlQueryable, scope: EffectScope, key: string): Promise<void> {
    await on.query(
      `INSERT INTO ${this.#p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at) VALUES (?, ?, ?, ?, 'intent', 1, ${NOW})
       ON DUPLICATE KEY UPDATE status = 'intent', attempts = attempts + 1, updated_at = ${NOW}`,
      [scope.instanceId, scope.generation, keyHash(key), key],
    );
  }

  async done(on: MysqlQueryable, scope: EffectScope, key: string, result: JsonValue | null): Promise<void> {
    await on.query(
      `INSERT INTO ${this.#p}effects (instance_id, generation, key_hash, effect_key, status, result, attempts, updated_at) VALUES (?, ?, ?, ?, 'done', ?, 1, ${NOW})
       ON DUPLICATE KEY UPDATE status = 'done', result = ?, updated_at = ${NOW}`,
      [scope.instanceId, scope.generation, keyHash(key), key, JSON.stringify(result), JSON.stringify(result)],
    );
  }

  async failed(on: MysqlQueryable, scope: EffectScope, key: string): Promise<void> {
    await on.query(`DELETE FROM ${this.#p}effects WHERE instance_id = ? AND generation = ? AND key_hash = ? AND status = 'intent'`, [
      scope.instanceId,
      scope.generation,
      keyHash(key),
    ]);
  }
}
