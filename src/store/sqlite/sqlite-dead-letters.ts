import { deadLetterValues, storableError, toDeadLetter } from '../rows.ts';
import type { DeadLetter, DeadLetterStore, Lease, NewDeadLetter, Tx } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';
import { finishTx, ownTx } from './sqlite-tx.ts';

/** Dead letters in a SQLite store: written through the job's transaction, so they commit with the checkpoint covering them. */
export class SqliteDeadLetters implements DeadLetterStore {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  async addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void> {
    ownTx(this.#db, tx).ensureBegun();
    this.#db.run(
      'INSERT INTO dead_letters (instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ...deadLetterValues(tx.lease, letter),
      Date.now(),
    );
  }

  async countDeadLetters(lease: Lease): Promise<number> {
    return Number(this.#db.get('SELECT count(*) AS n FROM dead_letters WHERE shard_id = ? AND generation = ?', lease.shardId, lease.generation)?.n ?? 0);
  }

  async listDeadLetters(instanceId: number, newest?: number): Promise<DeadLetter[]> {
    const from = 'FROM dead_letters d JOIN instances i ON i.id = d.instance_id AND i.generation = d.generation WHERE d.instance_id = ?';
    if (newest === undefined) return this.#db.all(`SELECT d.* ${from} ORDER BY d.id`, instanceId).map(toDeadLetter);
    return this.#db
      .all(`SELECT d.* ${from} ORDER BY d.id DESC LIMIT ?`, instanceId, Math.max(0, Math.trunc(newest)))
      .map(toDeadLetter)
      .reverse();
  }

  async countInstanceDeadLetters(instanceId: number): Promise<number> {
    return Number(
      this.#db.get(
        'SELECT count(*) AS n FROM dead_letters d JOIN instances i ON i.id = d.instance_id AND i.generation = d.generation WHERE d.instance_id = ?',
        instanceId,
      )?.n ?? 0,
    );
  }

  async resolveDeadLetter(tx: Tx, id: number): Promise<boolean> {
    return finishTx(this.#db, tx, () => {
      const deleted = this.#db.run('DELETE FROM dead_letters WHERE id = ?', id) > 0;
      return { result: deleted, commit: deleted };
    });
  }

  async noteDeadLetterRetry(id: number, error: string): Promise<void> {
    this.#db.write(() => this.#db.run('UPDATE dead_letters SET error = ?, attempts = attempts + 1 WHERE id = ?', storableError(error), id));
  }
}
