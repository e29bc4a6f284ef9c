import { deadLetterValues, storableError, toDeadLetter } from '../rows.ts';
import type { DeadLetter, DeadLetterStore, Lease, NewDeadLetter, Tx } from '../store.ts';
import { finishTx, inTx, type SqlDriver } from './sql-driver.ts';

/**
 * Dead letters on a SQL server. A letter is written through the job's transaction, so it commits
 * with the checkpoint covering its record; reads and retry notes use any connection.
 */
export class SqlDeadLetters implements DeadLetterStore {
  readonly #db: SqlDriver;

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  async addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void> {
    await inTx(this.#db, tx).query(
      `INSERT INTO ${this.#db.prefix}dead_letters (instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ${this.#db.dialect.now})`,
      deadLetterValues(tx.lease, letter),
    );
  }

  async countDeadLetters(lease: Lease): Promise<number> {
    const rows = await this.#db.rows(`SELECT count(*) AS n FROM ${this.#db.prefix}dead_letters WHERE shard_id = ? AND generation = ?`, [
      lease.shardId,
      lease.generation,
    ]);
    return Number(rows[0]?.n ?? 0);
  }

  async listDeadLetters(instanceId: number, newest?: number): Promise<DeadLetter[]> {
    const p = this.#db.prefix;
    const from = `FROM ${p}dead_letters d JOIN ${p}instances i ON i.id = d.instance_id AND i.generation = d.generation WHERE d.instance_id = ?`;
    if (newest === undefined) return (await this.#db.rows(`SELECT d.* ${from} ORDER BY d.id`, [instanceId])).map((row) => toDeadLetter(row));
    const rows = await this.#db.rows(`SELECT d.* ${from} ORDER BY d.id DESC LIMIT ${Math.max(0, Math.trunc(newest))}`, [instanceId]);
    return rows.map((row) => toDeadLetter(row)).reverse();
  }

  async countInstanceDeadLetters(instanceId: number): Promise<number> {
    const p = this.#db.prefix;
    const rows = await this.#db.rows(
      `SELECT count(*) AS n FROM ${p}dead_letters d JOIN ${p}instances i ON i.id = d.instance_id AND i.generation = d.generation WHERE d.instance_id = ?`,
      [instanceId],
    );
    return Number(rows[0]?.n ?? 0);
  }

  resolveDeadLetter(tx: Tx, id: number): Promise<boolean> {
    // In the retry's transaction, the DELETE locks the row: a second process retrying the same
    // letter waits for the first to commit, then finds nothing to delete and rolls back.
    return finishTx(this.#db, tx, async (on) => {
      const deleted = (await on.query(`DELETE FROM ${this.#db.prefix}dead_letters WHERE id = ?`, [id])).affectedRows > 0;
      return { result: deleted, commit: deleted };
    });
  }

  async noteDeadLetterRetry(id: number, error: string): Promise<void> {
    await this.#db.run(`UPDATE ${this.#db.prefix}dead_letters SET error = ?, attempts = attempts + 1 WHERE id = ?`, [storableError(error), id]);
  }
}
