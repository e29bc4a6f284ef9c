import type { JsonObject } from '../../json.ts';
import { CARRY_HISTORY, carriedShard, carryShardsSql, seedCheckpoint } from '../carry.ts';
import { type Row, toInstance, toShard } from '../rows.ts';
import type { Completion, InstanceInfo, InstanceStore, Lease, ShardInfo, ShardInputs } from '../store.ts';
import { inputsWrite } from './shared-writes.ts';
import type { SqlDriver, SqlQueryable } from './sql-driver.ts';
import { insertedId } from './sql-leases.ts';

/** Job instances and their shards on a SQL server. */
export class SqlInstances implements InstanceStore {
  readonly #db: SqlDriver;

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  async instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    const { prefix: p, dialect } = this.#db;
    await this.#db.run(
      `INSERT INTO ${p}instances (job, params_hash, params, version, created_at) VALUES (?, ?, ?, ?, ${dialect.now})${dialect.onConflict(['job', 'params_hash'], [], 'id')}`,
      [job, paramsHash, JSON.stringify(meta.params), meta.version],
    );
    return toInstance((await this.#db.rows(`SELECT * FROM ${p}instances WHERE job = ? AND params_hash = ?`, [job, paramsHash]))[0] as Row);
  }

  async resetInstance(instanceId: number, fromGeneration?: number, options?: { carry?: boolean }): Promise<InstanceInfo> {
    const p = this.#db.prefix;
    // Another process that moved the generation on first leaves nothing to update here, and the
    // read says where it is. Read inside the transaction, under the update's row lock.
    const row = await this.#db.transaction(async (tx) => {
      const updated = await tx.query(
        `UPDATE ${p}instances SET generation = generation + 1, status = 'open', completed_at = NULL WHERE id = ?${fromGeneration === undefined ? '' : ' AND generation = ?'}`,
        fromGeneration === undefined ? [instanceId] : [instanceId, fromGeneration],
      );
      const read = (await tx.query(`SELECT * FROM ${p}instances WHERE id = ?`, [instanceId])).rows[0] as Row;
      if (updated.affectedRows > 0 && options?.carry) await this.#carry(tx, toInstance(read));
      return read;
    });
    return toInstance(row);
  }

  /** Seeds the new generation's shards with the completed ones' last checkpoints (inside the reset's transaction). */
  async #carry(tx: SqlQueryable, instance: InstanceInfo): Promise<void> {
    const { prefix: p, dialect } = this.#db;
    const now = Date.now();
    const olds = (await tx.query(carryShardsSql(`${p}shards`, ['?', '?']), [instance.id, instance.generation - 1])).rows;
    for (const old of olds) {
      const checkpoints = (await tx.query(`SELECT * FROM ${p}checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?`, [old.id, CARRY_HISTORY])).rows;
      const carried = carriedShard(old, checkpoints);
      if (carried === undefined) continue;
      const inserted = await tx.query(
        `INSERT INTO ${p}shards (instance_id, generation, name, version, fingerprint, params_hash, checkpoint_seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)${dialect.returning ? ' RETURNING id' : ''}`,
        [instance.id, instance.generation, carried.name, carried.version, carried.fingerprint, carried.paramsHash, now],
      );
      const id = insertedId(inserted);
      const seed = seedCheckpoint(id, carried);
      await tx.query(
        `INSERT INTO ${p}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum) VALUES (?, 1, ?, ?, 0, NULL, ?, ?)`,
        [id, seed.position, seed.state, now, seed.checksum],
      );
    }
  }

  async listInstances(job?: string): Promise<InstanceInfo[]> {
    const p = this.#db.prefix;
    const rows =
      job === undefined
        ? await this.#db.rows(`SELECT * FROM ${p}instances ORDER BY id DESC`)
        : await this.#db.rows(`SELECT * FROM ${p}instances WHERE job = ? ORDER BY id DESC`, [job]);
    return rows.map(toInstance);
  }

  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    const { prefix: p, dialect } = this.#db;
    // Multi-row inserts in the job's order, so shard ids follow it, as on SQLite; a slice at a
    // time keeps each under the servers' bind-parameter limits.
    for (let start = 0; start < names.length; start += dialect.maxBatchRows) {
      const slice = names.slice(start, start + dialect.maxBatchRows);
      await this.#db.run(
        `INSERT INTO ${p}shards (instance_id, generation, name, version, updated_at) VALUES ${slice.map(() => `(?, ?, ?, ?, ${dialect.now})`).join(', ')}${dialect.onConflict(['instance_id', 'generation', 'name'], [], 'id')}`,
        slice.flatMap((name) => [instance.id, instance.generation, name, meta.version]),
      );
    }
    return this.listShards(instance.id);
  }

  async listShards(instanceId: number): Promise<ShardInfo[]> {
    const p = this.#db.prefix;
    const rows = await this.#db.rows(
      `SELECT sh.* FROM ${p}shards sh JOIN ${p}instances i ON i.id = sh.instance_id AND i.generation = sh.generation WHERE sh.instance_id = ? ORDER BY sh.id`,
      [instanceId],
    );
    return rows.map(toShard);
  }

  async setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    const write = inputsWrite(this.#db.prefix, lease, inputs);
    await this.#db.run(write.sql, write.values);
  }

  async completeIfDone(instanceId: number, generation: number): Promise<Completion> {
    const { prefix: p, dialect } = this.#db;
    const changed = await this.#db.run(
      `UPDATE ${p}instances SET status = 'completed', completed_at = ${dialect.now} WHERE id = ? AND generation = ? AND status = 'open'
       AND NOT EXISTS (SELECT 1 FROM ${p}shards WHERE instance_id = ? AND generation = ? AND status <> 'completed')`,
      [instanceId, generation, instanceId, generation],
    );
    if (changed.affectedRows > 0) return 'now';
    const rows = await this.#db.rows(`SELECT status FROM ${p}instances WHERE id = ?`, [instanceId]);
    return rows[0]?.status === 'completed' ? 'before' : false;
  }
}
