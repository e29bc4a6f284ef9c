import type { JsonObject } from '../../json.ts';
import { CARRY_HISTORY, carriedShard, carryShardsSql, seedCheckpoint } from '../carry.ts';
import { type Row, toInstance, toShard } from '../rows.ts';
import type { Completion, InstanceInfo, InstanceStore, Lease, ShardInfo, ShardInputs } from '../store.ts';
import { NOW, type PostgresDriver } from './postgres-driver.ts';

/** Job instances and their shards on PostgreSQL. */
export class PostgresInstances implements InstanceStore {
  readonly #db: PostgresDriver;

  constructor(driver: PostgresDriver) {
    this.#db = driver;
  }

  async instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    const s = this.#db.s;
    await this.#db.query(
      `INSERT INTO ${s}instances (job, params_hash, params, version, created_at) VALUES ($1, $2, $3, $4, ${NOW}) ON CONFLICT (job, params_hash) DO NOTHING`,
      [job, paramsHash, JSON.stringify(meta.params), meta.version],
    );
    return toInstance((await this.#db.query(`SELECT * FROM ${s}instances WHERE job = $1 AND params_hash = $2`, [job, paramsHash]))[0] as Row);
  }

  async resetInstance(instanceId: number, fromGeneration?: number, options?: { carry?: boolean }): Promise<InstanceInfo> {
    const s = this.#db.s;
    const rows = await this.#db.transaction(async (client) => {
      const updated = (
        await client.query(
          `UPDATE ${s}instances SET generation = generation + 1, status = 'open', completed_at = NULL
           WHERE id = $1 AND ($2::integer IS NULL OR generation = $2::integer) RETURNING *`,
          [instanceId, fromGeneration ?? null],
        )
      ).rows as Row[];
      if (updated.length > 0 && options?.carry) await this.#carry(client, toInstance(updated[0] as Row));
      return updated;
    });
    // Another process moved the generation on first: leave it there, say where it is.
    if (rows.length === 0) return toInstance((await this.#db.query(`SELECT * FROM ${s}instances WHERE id = $1`, [instanceId]))[0] as Row);
    return toInstance(rows[0] as Row);
  }

  /** Seeds the new generation's shards with the completed ones' last checkpoints (inside the reset's transaction). */
  async #carry(client: { query(sql: string, values?: unknown[]): Promise<{ rows: unknown[] }> }, instance: InstanceInfo): Promise<void> {
    const s = this.#db.s;
    const now = Date.now();
    const olds = (await client.query(carryShardsSql(`${s}shards`, ['$1', '$2']), [instance.id, instance.generation - 1])).rows as Row[];
    for (const old of olds) {
      const checkpoints = (await client.query(`SELECT * FROM ${s}checkpoints WHERE shard_id = $1 ORDER BY seq DESC LIMIT $2`, [old.id, CARRY_HISTORY]))
        .rows as Row[];
      const carried = carriedShard(old, checkpoints);
      if (carried === undefined) continue;
      const [inserted] = (
        await client.query(
          `INSERT INTO ${s}shards (instance_id, generation, name, version, fingerprint, params_hash, checkpoint_seq, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, 1, $7) RETURNING id`,
          [instance.id, instance.generation, carried.name, carried.version, carried.fingerprint, carried.paramsHash, now],
        )
      ).rows as Row[];
      const id = Number(inserted?.id);
      const seed = seedCheckpoint(id, carried);
      await client.query(
        `INSERT INTO ${s}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum) VALUES ($1, 1, $2, $3, 0, NULL, $4, $5)`,
        [id, seed.position, seed.state, now, seed.checksum],
      );
    }
  }

  async listInstances(job?: string): Promise<InstanceInfo[]> {
    const s = this.#db.s;
    const rows =
      job === undefined
        ? await this.#db.query(`SELECT * FROM ${s}instances ORDER BY id DESC`)
        : await this.#db.query(`SELECT * FROM ${s}instances WHERE job = $1 ORDER BY id DESC`, [job]);
    return rows.map(toInstance);
  }

  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    // ORDER BY ordinality keeps shard ids in the job's order, as on SQLite.
    await this.#db.query(
      `INSERT INTO ${this.#db.s}shards (instance_id, generation, name, version, updated_at)
       SELECT $1, $2, name, $4, ${NOW} FROM unnest($3::text[]) WITH ORDINALITY AS t(name, n) ORDER BY n
       ON CONFLICT (instance_id, generation, name) DO NOTHING`,
      [instance.id, instance.generation, names, meta.version],
    );
    return this.listShards(instance.id);
  }

  async listShards(instanceId: number): Promise<ShardInfo[]> {
    const s = this.#db.s;
    const rows = await this.#db.query(
      `SELECT sh.* FROM ${s}shards sh JOIN ${s}instances i ON i.id = sh.instance_id AND i.generation = sh.generation WHERE sh.instance_id = $1 ORDER BY sh.id`,
      [instanceId],
    );
    return rows.map(toShard);
  }

  async setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    await this.#db.query(`UPDATE ${this.#db.s}shards SET fingerprint = $1, version = $2, params_hash = $3, code = $4 WHERE id = $5 AND lease_token = $6`, [
      inputs.fingerprint,
      inputs.version,
      inputs.paramsHash,
      inputs.code ?? null,
      lease.shardId,
      lease.token,
    ]);
  }

  async completeIfDone(instanceId: number, generation: number): Promise<Completion> {
    const s = this.#db.s;
    const changed = await this.#db.query(
      `UPDATE ${s}instances SET status = 'completed', completed_at = ${NOW} WHERE id = $1 AND generation = $2 AND status = 'open'
       AND NOT EXISTS (SELECT 1 FROM ${s}shards WHERE instance_id = $1 AND generation = $2 AND status <> 'completed') RETURNING id`,
      [instanceId, generation],
    );
    if (changed.length > 0) return 'now';
    const rows = await this.#db.query(`SELECT status FROM ${s}instances WHERE id = $1`, [instanceId]);
    return rows[0]?.status === 'completed' ? 'before' : false;
  }
}
