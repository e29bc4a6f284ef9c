import type { JsonObject } from '../../json.ts';
import { type Row, toInstance, toShard } from '../rows.ts';
import type { Completion, InstanceInfo, InstanceStore, Lease, ShardInfo, ShardInputs } from '../store.ts';
import { type MysqlDriver, NOW } from './mysql-driver.ts';

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

  async resetInstance(instanceId: number, fromGeneration?: number): Promise<InstanceInfo> {
    const p = this.#db.p;
    // No UPDATE … RETURNING on MySQL: update, then read. Another process that moved the
    // generation on first leaves nothing to update here, and the read says where it is.
    await this.#db.query(
      `UPDATE ${p}instances SET generation = generation + 1, status = 'open', completed_at = NULL WHERE id = ? AND (? IS NULL OR generation = ?)`,
      [instanceId, fromGeneration ?? null, fromGeneration ?? null],
    );
    return toInstance((await this.#db.rows(`SELECT * FROM ${p}instances WHERE id = ?`, [instanceId]))[0] as Row);
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
