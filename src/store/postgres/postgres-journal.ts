import type { JsonValue } from '../../json.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectJournal, EffectScope } from '../store.ts';
import { NOW, type PostgresDriver } from './postgres-driver.ts';

/**
 * The effect journal of a PostgreSQL store, written on pooled connections in autocommit: an
 * intent is durable before the effect runs, whatever becomes of the job's open transaction.
 */
export class PostgresJournal implements EffectJournal {
  readonly #db: PostgresDriver;

  constructor(driver: PostgresDriver) {
    this.#db = driver;
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const rows = await this.#db.query(`SELECT * FROM ${this.#db.s}effects WHERE instance_id = $1 AND generation = $2 AND key = $3`, [
      scope.instanceId,
      scope.generation,
      key,
    ]);
    const row = rows[0];
    return row === undefined ? undefined : toEffect(key, row);
  }

  async effectIntent(scope: EffectScope, key: string): Promise<void> {
    const s = this.#db.s;
    await this.#db.query(
      `INSERT INTO ${s}effects (instance_id, generation, key, status, attempts, updated_at) VALUES ($1, $2, $3, 'intent', 1, ${NOW})
       ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'intent', attempts = ${s}effects.attempts + 1, updated_at = excluded.updated_at`,
      [scope.instanceId, scope.generation, key],
    );
  }

  async effectDone(scope: EffectScope, key: string, result: JsonValue | null): Promise<void> {
    await this.#db.query(
      `INSERT INTO ${this.#db.s}effects (instance_id, generation, key, status, result, attempts, updated_at) VALUES ($1, $2, $3, 'done', $4, 1, ${NOW})
       ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at`,
      [scope.instanceId, scope.generation, key, JSON.stringify(result)],
    );
  }

  async effectFailed(scope: EffectScope, key: string): Promise<void> {
    await this.#db.query(`DELETE FROM ${this.#db.s}effects WHERE instance_id = $1 AND generation = $2 AND key = $3 AND status = 'intent'`, [
      scope.instanceId,
      scope.generation,
      key,
    ]);
  }
}
