import type { JsonObject } from '../../json.ts';
import { type Row, toInstance, toShard } from '../rows.ts';
import type { InstanceInfo, Lease, ShardInfo, ShardInputs } from '../store.ts';
import { type MysqlQueryable, NOW } from './mysql-driver.ts';

/** The SQL of instances, their generations and their shards on MySQL/MariaDB. `p` is the table prefix. */
export class MysqlInstances {
  readonly #p: string;

  constructor(prefix: string) {
    this.#p = prefix;
  }

  async instance(on: MysqlQueryable, job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    // `id = id`: a no-op on a duplicate, where INSERT IGNORE would also swallow other errors.
    await on.query(
      `INSERT INTO ${this.#p}instances (job, params_hash, params, version, created_at) VALUES (?, ?, ?, ?, ${NOW}) ON DUPLICATE KEY UPDATE id = id`,
      [job, paramsHash, JSON.stringify(meta.params), meta.version],
    );
    return toInstance((await on.query(`SELECT * FROM ${this.#p}instances WHERE job = ? AND params_hash = ?`, [job, paramsHash])).rows[0] as Row);
  }

  async get(on: MysqlQueryable, instanceId: number): Promise<InstanceInfo> {
    return toInstance((await on.query(`SELECT * FROM ${this.#p}instances WHERE id = ?`, [instanceId])).rows[0] as Row);
  }

  /** A new generation; with `fromGeneration`, only from that one (else the instance is left as it is). */
  async reset(on: MysqlQueryable, instanceId: number, fromGeneration?: number): Promise<InstanceInfo> {
    await on.query(
      `UPDATE ${this.#p}instances SET generation = generation + 1, status = 'open', completed_at = NULL WHERE id = ? AND (? IS NULL OR generation = ?)`,
      [instanceId, fromGeneration ?? null, fromGeneration ?? null],
    );
    return this.get(on, instanceId);
  }

  async list(on: MysqlQueryable, job?: string): Promise<InstanceInfo[]> {
    const { rows } =
      job === undefined
        ? await on.query(`SELECT * FROM ${this.#p}instances ORDER BY id DESC`)
        : await on.query(`SELECT * FROM ${this.#p}instances WHERE job = ? ORDER BY id DESC`, [job]);
    return rows.map(toInstance);
  }

  async ensureShards(on: MysqlQueryable, instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<void> {
    if (names.length === 0) return;
    // One multi-row insert in the job's order, so shard ids follow it, as on the other stores.
    await on.query(
      `INSERT INTO ${this.#p}shards (instance_id, generation, name, version, updated_at) VALUES ${names.map(() => `(?, ?, ?, ?, ${NOW})`).join(', ')}
       ON DUPLICATE KEY UPDATE id = id`,
      names.flatMap((name) => [instance.id, instance.generation, name, meta.version]),
    );
  }

  async listShards(on: MysqlQueryable, instanceId: number): Promise<ShardInfo[]> {
    const { rows } = await on.query(
      `SELECT s.* FROM ${this.#p}shards s JOIN ${this.#p}instances i ON i.id = s.instance_id AND i.generation = s.generation WHERE s.instance_id = ? ORDER BY s.id`,
      [instanceId],
    );
    return rows.map(toShard);
  }

  async setFingerprint(on: MysqlQueryable, lease: Lease, fingerprint: string | null): Promise<void> {
    await on.query(`UPDATE ${this.#p}shards SET fingerprint = ? WHERE id = ? AND lease_token = ?`, [fingerprint, lease.shardId, lease.token]);
  }

  async setInputs(on: MysqlQueryable, lease: Lease, inputs: ShardInputs): Promise<void> {
    await on.query(`UPDATE ${this.#p}shards SET fingerprint = ?, version = ?, params_hash = ? WHERE id = ? AND lease_token = ?`, [
      inputs.fingerprint,
      inputs.version,
      inputs.paramsHash,
      lease.shardId,
      lease.token,
    ]);
  }

  /** Mark the instance completed if every shard of its generation is; true when it is completed. */
  async completeIfDone(on: MysqlQueryable, instanceId: number, generation: number): Promise<boolean> {
    const changed = await on.query(
      `UPDATE ${this.#p}instances SET status = 'completed', completed_at = ${NOW} WHERE id = ? AND generation = ? AND status = 'open'
       AND NOT EXISTS (SELECT 1 FROM ${this.#p}shards WHERE instance_id = ? AND generation = ? AND status <> 'completed')`,
      [instanceId, generation, instanceId, generation],
    );
    if (changed.affectedRows > 0) return true;
    const { rows } = await on.query(`SELECT status FROM ${this.#p}instances WHERE id = ?`, [instanceId]);
    return rows[0]?.status === 'completed';
  }
}
