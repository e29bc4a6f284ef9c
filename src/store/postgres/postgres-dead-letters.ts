import { deadLetterValues, storableError, toDeadLetter } from '../rows.ts';
import type { DeadLetter, DeadLetterStore, Lease, NewDeadLetter, Tx } from '../store.ts';
import { NOW, type PostgresDriver } from './postgres-driver.ts';
import { finishTx, inTx } from './postgres-tx.ts';

/** Dead letters on PostgreSQL: written through the job's transaction, so they commit with the checkpoint covering them. */
export class PostgresDeadLetters implements DeadLetterStore {
  readonly #db: PostgresDriver;

  constructor(driver: PostgresDriver) {
    this.#db = driver;
  }

  async addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void> {
    await inTx(this.#db, tx).query(
      `INSERT INTO ${this.#db.s}dead_letters (instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, ${NOW})`,
      deadLetterValues(tx.lease, letter),
    );
  }

  async countDeadLetters(lease: Lease): Promise<number> {
    const rows = await this.#db.query(`SELECT count(*) AS n FROM ${this.#db.s}dead_letters WHERE shard_id = $1 AND generation = $2`, [
      lease.shardId,
      lease.generation,
    ]);
    return Number(rows[0]?.n ?? 0);
  }

  async listDeadLetters(instanceId: number): Promise<DeadLetter[]> {
    const s = this.#db.s;
    const rows = await this.#db.query(
      `SELECT d.* FROM ${s}dead_letters d JOIN ${s}instances i ON i.id = d.instance_id AND i.generation = d.generation
       WHERE d.instance_id = $1 ORDER BY d.id`,
      [instanceId],
    );
    return rows.map(toDeadLetter);
  }

  resolveDeadLetter(tx: Tx, id: number): Promise<boolean> {
    return finishTx(this.#db, tx, async (on) => {
      const deleted = (await on.query(`DELETE FROM ${this.#db.s}dead_letters WHERE id = $1 RETURNING id`, [id])).rows.length > 0;
      return { result: deleted, commit: deleted };
    });
  }

  async noteDeadLetterRetry(id: number, error: string): Promise<void> {
    await this.#db.query(`UPDATE ${this.#db.s}dead_letters SET error = $1, attempts = attempts + 1 WHERE id = $2`, [storableError(error), id]);
  }
}
