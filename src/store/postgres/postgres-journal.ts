import type { JsonValue } from '../../json.ts';
import { deadLetterValues, type Row, toDeadLetter, toEffect } from '../rows.ts';
import type { DeadLetter, EffectEntry, EffectScope, Lease, NewDeadLetter } from '../store.ts';
import type { PgQueryable } from './pg-types.ts';

/**
 * The effect journal and the dead letters of a PostgreSQL store: the SQL, apart from the store
 * class. `prefix` is the quoted schema and a dot. The journal is written on pooled connections
 * in autocommit (durable before the effect runs, whatever becomes of the chunk); dead letters
 * are written through the job's transaction (they commit with the checkpoint covering them).
 */
export class PostgresJournal {
  readonly #s: string;
  readonly #now: string;

  constructor(prefix: string, now: string) {
    this.#s = prefix;
    this.#now = now;
  }

  async get(on: PgQueryable, scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const { rows } = await on.query(`SELECT * FROM ${this.#s}effects WHERE instance_id = $1 AND generation = $2 AND key = $3`, [
      scope.instanceId,
      scope.generation,
      key,
    ]);
    const row = rows[0];
    return row === undefined ? undefined : toEffect(key, row);
  }

  async intent(on: PgQueryable, scope: EffectScope, key: string): Promise<void> {
    await on.query(
      `INSERT INTO ${this.#s}effects (instance_id, generation, key, status, attempts, updated_at) VALUES ($1, $2, $3, 'intent', 1, ${this.#now})
       ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'intent', attempts = ${this.#s}effects.attempts + 1, updated_at = excluded.updated_at`,
      [scope.instanceId, scope.generation, key],
    );
  }

  async done(on: PgQueryable, scope: EffectScope, key: string, result: JsonValue | null): Promise<void> {
    await on.query(
      `INSERT INTO ${this.#s}effects (instance_id, generation, key, status, result, attempts, updated_at) VALUES ($1, $2, $3, 'done', $4, 1, ${this.#now})
       ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at`,
      [scope.instanceId, scope.generation, key, JSON.stringify(result)],
    );
  }

  async failed(on: PgQueryable, scope: EffectScope, key: string): Promise<void> {
    await on.query(`DELETE FROM ${this.#s}effects WHERE instance_id = $1 AND generation = $2 AND key = $3 AND status = 'intent'`, [
      scope.instanceId,
      scope.generation,
      key,
    ]);
  }

  async addDeadLetter(tx: PgQueryable, lease: Lease, letter: NewDeadLetter): Promise<void> {
    await tx.query(
      `INSERT INTO ${this.#s}dead_letters (instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, ${this.#now})`,
      deadLetterValues(lease, letter),
    );
  }

  async countDeadLetters(on: PgQueryable, lease: Lease): Promise<number> {
    const { rows } = await on.query(`SELECT count(*) AS n FROM ${this.#s}dead_letters WHERE shard_id = $1 AND generation = $2`, [
      lease.shardId,
      lease.generation,
    ]);
    return Number(rows[0]?.n ?? 0);
  }

  async listDeadLetters(on: PgQueryable, instanceId: number): Promise<DeadLetter[]> {
    const { rows } = await on.query(
      `SELECT d.* FROM ${this.#s}dead_letters d JOIN ${this.#s}instances i ON i.id = d.instance_id AND i.generation = d.generation
       WHERE d.instance_id = $1 ORDER BY d.id`,
      [instanceId],
    );
    return rows.map((row: Row) => toDeadLetter(row));
  }

  /** True when the letter was there to delete. */
  async deleteDeadLetter(tx: PgQueryable, id: number): Promise<boolean> {
    const result = await tx.query(`DELETE FROM ${this.#s}dead_letters WHERE id = $1 RETURNING id`, [id]);
    return result.rows.length > 0;
  }

  async noteDeadLetterRetry(on: PgQueryable, id: number, error: string): Promise<void> {
    await on.query(`UPDATE ${this.#s}dead_letters SET error = $1, attempts = attempts + 1 WHERE id = $2`, [error, id]);
  }
}
