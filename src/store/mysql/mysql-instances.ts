import type { JsonObject } from '../../json.ts';
import { CARRY_HISTORY, carriedShard, carryShardsSql, seedCheckpoint } from '../carry.ts';
import { type Row, toInstance, toShard } from '../rows.ts';
import type { Completion, InstanceInfo, InstanceStore, Lease, ShardInfo, ShardInputs } from '../store.ts';
import { type MysqlDriver, type MysqlQueryable, NOW } from './mysql-driver.ts';

/** Job instances and their shards on MySQL/MariaDB. */
export class MysqlInstances implements InstanceStore {
  readonly #db: MysqlDriver;

  constructor(driver: MysqlDriver) {
    this.#db = driver;
  }

  async instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    const p = this.#db.p;
    // `id = id`: a no-op on a duplicate, where INSERT IGNORE would also swallow other errors.
    await this.#db.query(
      `INSERT INTO ${p}instances (job, params_hash, params, version, created_at) VALUES (?, ?, ?, ?, ${NOW}) ON DUPLICATE KEY UPDATE id = id`,
      [job, paramsHash, JSON.stringify(meta.params), meta.version],
    );
    return toInstance((await this.#db.rows(`SELECT * FROM ${p}instances WHERE job = ? AND params_hash = ?`, [job, paramsHash]))[0] as Row);
  }

  async resetInstance(instanceId: number, fromGeneration?: number, options?: { carry?: boolean }): Promise<InstanceInfo> {
    const p = this.#db.p;
    // No UPDATE … RETURNING on MySQL: update, then read. Another process that moved the
    // generation on first leaves nothing to update here, and the read says where it is.
    await this.#db.transaction(async (tx) => {
      const updated = await tx.query(
        `UPDATE ${p}instances SET generation = generation + 1, status = 'open', completed_at = NULL WHERE id = ? AND (? IS NULL OR generation = ?)`,
        [instanceId, fromGeneration ?? null, fromGeneration ?? null],
      );
      if (updated.affectedRows > 0 && options?.carry) {
        await this.#carry(tx, toInstance((await tx.query(`SELECT * FROM ${p}instances WHERE id = ?`, [instanceId])).rows[0] as Row));
      }
    });
    return toInstance((await this.#db.rows(`SELECT * FROM ${p}instances WHERE id = ?`, [instanceId]))[0] as Row);
  }

  /** Seeds the new generation's shards with the completed ones' last checkpoints (inside the reset's transaction). */
  async #carry(tx: MysqlQueryable, instance: InstanceInfo): Promise<void> {
    const p = this.#db.p;
    const now = Date.now();
    const olds = (await tx.query(carryShardsSql(`${p}shards`, ['?', '?']), [instance.id, instance.generation - 1])).rows;
    for (const old of olds) {
      const checkpoints = (await tx.query(`SELECT * FROM ${p}checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?`, [old.id, CARRY_HISTORY])).rows;
      const carried = carriedShard(old, checkpoints);
      if (carried === undefined) continue;
      const inserted = await tx.query(
        `INSERT INTO ${p}shards (instance_id, generation, name, version, fingerprint, params_hash, checkpoint_seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)`,
        [instance.id, instance.generation, carried.name, carried.version, carried.fingerprint, carried.paramsHash, now],
      );
      const id = Number(inserted.insertId);
      const seed = seedCheckpoint(id, carried);
      await tx.query(
        `INSERT INTO ${p}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum) VALUES (?, 1, ?, ?, 0, NULL, ?, ?)`,
        [id, seed.position, seed.state, now, seed.checksum],
      );
    }
  }

  async listInstances(job?: string): Promise<InstanceInfo[]> {
    const p = this.#db.p;
    const rows =
      job === undefined
        ? await this.#db.rows(`SELECT * FROM ${p}instances ORDER BY id DESC`)
        : await this.#db.rows(`SELECT * FROM ${p}instances WHERE job = ? ORDER BY id DESC`, [job]);
    return rows.map(toInstance);
  }

  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    if (names.length > 0) {
      // One multi-row insert in the job's order, so shard ids follow it, as on the other stores.
      await this.#db.query(
        `INSERT INTO ${this.#db.p}shards (instance_id, generation, name, version, updated_at) VALUES ${names.map(() => `(?, ?, ?, ?, ${NOW})`).join(', ')}
         ON DUPLICATE KEY UPDATE id = id`,
        names.flatMap((name) => [instance.id, instance.generation, name, meta.version]),
      );
    }
    return this.listShards(instance.id);
  }

  async listShards(instanceId: number): Promise<ShardInfo[]> {
    const p = this.#db.p;
    const rows = await this.#db.rows(
      `SELECT sh.* FROM ${p}shards sh JOIN ${p}instances i ON i.id = sh.instance_id AND i.generation = sh.generation WHERE sh.instance_id = ? ORDER BY sh.id`,
      [instanceId],
    );
    return rows.map(toShard);
  }

  async setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    await this.#db.query(`UPDATE ${this.#db.p}shards SET fingerprint = ?, version = ?, params_hash = ?, code = ? WHERE id = ? AND lease_token = ?`, [
      inputs.fingerprint,
      inputs.version,
      inputs.paramsHash,
      inputs.code ?? null,
      lease.shardId,
      lease.token,
    ]);
  }

  async completeIfDone(instanceId: number, generation: number): Promise<Completion> {
    const p = this.#db.p;
    const changed = await this.#db.query(
      `UPDATE ${p}instances SET status = 'completed', completed_at = ${NOW} WHERE id = ? AND generation = ? AND status = 'open'
       AND NOT EXISTS (SELECT 1 FROM ${p}shards WHERE instance_id = ? AND generation = ? AND status <> 'completed')`,
      [instanceId, generation, instanceId, generation],
    );
    if (changed.affectedRows > 0) return 'now';
    const rows = await this.#db.rows(`SELECT status FROM ${p}instances WHERE id = ?`, [instanceId]);
    return rows[0]?.status === 'completed' ? 'before' : false;
  }
}
