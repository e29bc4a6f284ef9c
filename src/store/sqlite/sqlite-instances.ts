import type { JsonObject } from '../../json.ts';
import { CARRY_HISTORY, carriedShard, carryShardsSql, seedCheckpoint } from '../carry.ts';
import { type Row, toInstance, toShard } from '../rows.ts';
import { inputsWrite } from '../sql/shared-writes.ts';
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

  async resetInstance(instanceId: number, fromGeneration?: number, options?: { carry?: boolean }): Promise<InstanceInfo> {
    return this.#db.write(() => {
      const changed = this.#db.run(
        "UPDATE instances SET generation = generation + 1, status = 'open', completed_at = NULL WHERE id = ? AND (? IS NULL OR generation = ?)",
        instanceId,
        fromGeneration ?? null,
        fromGeneration ?? null,
      );
      const instance = toInstance(this.#db.get('SELECT * FROM instances WHERE id = ?', instanceId) as Row);
      if (changed > 0 && options?.carry) this.#carry(instance);
      return instance;
    });
  }

  /** Seeds the new generation's shards with the completed ones' last checkpoints (inside the reset's transaction). */
  #carry(instance: InstanceInfo): void {
    const db = this.#db;
    const now = Date.now();
    for (const old of db.all(carryShardsSql('shards', ['?', '?']), instance.id, instance.generation - 1)) {
      const carried = carriedShard(old, db.all('SELECT * FROM checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?', Number(old.id), CARRY_HISTORY));
      if (carried === undefined) continue;
      db.run(
        'INSERT INTO shards (instance_id, generation, name, version, fingerprint, params_hash, checkpoint_seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)',
        instance.id,
        instance.generation,
        carried.name,
        carried.version,
        carried.fingerprint,
        carried.paramsHash,
        now,
      );
      const id = Number(
        (db.get('SELECT id FROM shards WHERE instance_id = ? AND generation = ? AND name = ?', instance.id, instance.generation, carried.name) as Row).id,
      );
      const seed = seedCheckpoint(id, carried);
      db.run(
        'INSERT INTO checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum) VALUES (?, 1, ?, ?, 0, NULL, ?, ?)',
        id,
        seed.position,
        seed.state,
        now,
        seed.checksum,
      );
    }
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
    const write = inputsWrite('', lease, inputs);
    this.#db.write(() => this.#db.run(write.sql, ...write.values));
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
