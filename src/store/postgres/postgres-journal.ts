import type { JsonValue } from '../../json.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectJournal, EffectScope, NewEvent } from '../store.ts';
import { NOW, type PostgresDriver } from './postgres-driver.ts';
import { appendChained, type JoinedWrite } from './postgres-history.ts';

/**
 * The effect journal of a PostgreSQL store, written on pooled connections, never in the job's
 * transaction: an intent is durable before the effect runs, whatever becomes of the chunk. An
 * entry and the events recording it commit together (see appendChained).
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

  /** The write alone in autocommit, or with `events` appended to the chain in the same commit. */
  async #write(scope: EffectScope, events: NewEvent[], write: JoinedWrite): Promise<void> {
    if (events.length === 0) await this.#db.query(write.sql(1, 'true'), write.values);
    else await appendChained(this.#db, scope.instanceId, scope.generation, events, write);
  }

  async effectIntent(scope: EffectScope, key: string, events: NewEvent[] = []): Promise<void> {
    const s = this.#db.s;
    await this.#write(scope, events, {
      sql: (n, gate) =>
        `INSERT INTO ${s}effects (instance_id, generation, key, status, attempts, updated_at)
         SELECT $${n}::bigint, $${n + 1}::int, $${n + 2}::text, 'intent', 1, ${NOW} WHERE ${gate}
         ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'intent', attempts = ${s}effects.attempts + 1, updated_at = excluded.updated_at`,
      values: [scope.instanceId, scope.generation, key],
    });
  }

  async effectDone(scope: EffectScope, key: string, result: JsonValue | null, events: NewEvent[] = []): Promise<void> {
    await this.#write(scope, events, {
      sql: (n, gate) =>
        `INSERT INTO ${this.#db.s}effects (instance_id, generation, key, status, result, attempts, updated_at)
         SELECT $${n}::bigint, $${n + 1}::int, $${n + 2}::text, 'done', $${n + 3}::text, 1, ${NOW} WHERE ${gate}
         ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at`,
      values: [scope.instanceId, scope.generation, key, JSON.stringify(result)],
    });
  }

  async effectFailed(scope: EffectScope, key: string, events: NewEvent[] = []): Promise<void> {
    await this.#write(scope, events, {
      sql: (n, gate) =>
        `DELETE FROM ${this.#db.s}effects WHERE instance_id = $${n} AND generation = $${n + 1} AND key = $${n + 2} AND status = 'intent' AND ${gate}`,
      values: [scope.instanceId, scope.generation, key],
    });
  }
}
