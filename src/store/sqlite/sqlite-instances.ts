import type { JsonObject } from '../../json.ts';
import { type Row, toInstance, toShard } from '../rows.ts';
import type { Completion, InstanceInfo, InstanceStore, Lease, ShardInfo, ShardInputs } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

/** Job instances and their shards in a SQLite store. */
export class SqliteInstances implements InstanceStore {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  async instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    return this.#db.write(() => {
      this.#db.run(
        'INSERT INTO instances (job, params_hash, params, version, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (job, params_hash) DO NOTHING',
        job,
        paramsHash,
        JSON.stringify(meta.params),
        meta.version,
        Date.now(),
      );
      return toInstance(this.#db.get('SELECT * FROM instances WHERE job = ? AND params_hash = ?', job, paramsHash) as Row);
    });
  }

  async resetInstance(instanceId: number, fromGeneration?: number): Promise<InstanceInfo> {
    return this.#db.write(() => {
      this.#db.run(
        "UPDATE instances SET generation = generation + 1, status = 'open', completed_at = NULL WHERE id = ? AND (? IS NULL OR generation = ?)",
        instanceId,
        fromGeneration ?? null,
        fromGeneration ?? null,
      );
      return toInstance(this.#db.get('SELECT * FROM instances WHERE id = ?', instanceId) as Row);
    });
  }

  async listInstances(job?: string): Promise<InstanceInfo[]> {
    const rows =
      job === undefined
        ? this.#db.all('SELECT * FROM instances ORDER BY id DESC')
        : this.#db.all('SELECT * FROM instances WHERE job = ? ORDER BY id DESC', job);
    return rows.map(toInstance);
  }

  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    const known = new Set(
      this.#db.all('SELECT name FROM shards WHERE instance_id = ? AND generation = ?', instance.id, instance.generation).map((row) => String(row.name)),
    );
    const missing = names.filter((name) => !known.has(name));
    if (missing.length > 0) {
      this.#db.write(() => {
        const now = Date.now();
        const insert = this.#db.conn.prepare(
          'INSERT INTO shards (instance_id, generation, name, version, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id, generation, name) DO NOTHING',
        );
        for (const name of missing) insert.run(instance.id, instance.generation, name, meta.version, now);
      });
    }
    return this.listShards(instance.id);
  }

  async listShards(instanceId: number): Promise<ShardInfo[]> {
    return this.#db
      .all(
        'SELECT s.* FROM shards s JOIN instances i ON i.id = s.instance_id AND i.generation = s.generation WHERE s.instance_id = ? ORDER BY s.id',
        instanceId,
      )
      .map(toShard);
  }

  async setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    this.#db.write(() => {
      this.#db.run(
        'UPDATE shards SET fingerprint = ?, version = ?, params_hash = ?, code = ? WHERE id = ? AND lease_token = ?',
        inputs.fingerprint,
        inputs.version,
        inputs.paramsHash,
        inputs.code ?? null,
        lease.shardId,
        lease.token,
      );
    });
  }

  async completeIfDone(instanceId: number, generation: number): Promise<Completion> {
    return this.#db.write(() => {
      const changed = this.#db.run(
        `UPDATE instances SET status = 'completed', completed_at = ? WHERE id = ? AND generation = ? AND status = 'open'
         AND NOT EXISTS (SELECT 1 FROM shards WHERE instance_id = ? AND generation = ? AND status != 'completed')`,
        Date.now(),
        instanceId,
        generation,
        instanceId,
        generation,
      );
      const row = this.#db.get('SELECT status FROM instances WHERE id = ?', instanceId);
      return changed > 0 ? 'now' : row?.status === 'completed' ? 'before' : false;
    });
  }
}
