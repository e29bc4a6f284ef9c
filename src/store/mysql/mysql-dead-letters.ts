import { deadLetterValues, toDeadLetter } from '../rows.ts';
import type { DeadLetter, Lease, NewDeadLetter } from '../store.ts';
import { type MysqlQueryable, NOW } from './mysql-driver.ts';

/**
 * Dead letters of a MySQL/MariaDB store. A letter is written through the job's transaction, so it
 * commits with the checkpoint covering its record; reads and retry notes use any connection.
 */
export class MysqlDeadLetters {
  readonly #p: string;

  constructor(prefix: string) {
    this.#p = prefix;
  }

  async add(tx: MysqlQueryable, lease: Lease, letter: NewDeadLetter): Promise<void> {
    await tx.query(
      `INSERT INTO ${this.#p}dead_letters (instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ${NOW})`,
      deadLetterValues(lease, letter),
    );
  }

  async count(on: MysqlQueryable, lease: Lease): Promise<number> {
    const { rows } = await on.query(`SELECT count(*) AS n FROM ${this.#p}dead_letters WHERE shard_id = ? AND generation = ?`, [
      lease.shardId,
      lease.generation,
    ]);
    return Number(rows[0]?.n ?? 0);
  }

  async list(on: MysqlQueryable, instanceId: number): Promise<DeadLetter[]> {
    const { rows } = await on.query(
      `SELECT d.* FROM ${this.#p}dead_letters d JOIN ${this.#p}instances i ON i.id = d.instance_id AND i.generation = d.generation
       WHERE d.instance_id = ? ORDER BY d.id`,
      [instanceId],
    );
    return rows.map((row) => toDeadLetter(row));
  }

  /** True when the letter was there to delete (in the retry's transaction: it locks the row). */
  async delete(tx: MysqlQueryable, id: number): Promise<boolean> {
    const result = await tx.query(`DELETE FROM ${this.#p}dead_letters WHERE id = ?`, [id]);
    return result.affectedRows > 0;
  }

  async noteRetry(on: MysqlQueryable, id: number, error: string): Promise<void> {
    await on.query(`UPDATE ${this.#p}dead_letters SET error = ?, attempts = attempts + 1 WHERE id = ?`, [error, id]);
  }
}
