import type { JsonObject } from '../../json.ts';
import { toRun } from '../rows.ts';
import type { FailureHistory, InstanceStatus, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import type { MysqlQueryable } from './mysql-driver.ts';
import type { MysqlInstances } from './mysql-instances.ts';
import type { MysqlLeases } from './mysql-leases.ts';

/** The SQL of the history a person reads on MySQL/MariaDB: events, runs, status. `p` is the table prefix. */
export class MysqlHistory {
  readonly #p: string;
  readonly #instances: MysqlInstances;
  readonly #leases: MysqlLeases;

  constructor(prefix: string, instances: MysqlInstances, leases: MysqlLeases) {
    this.#p = prefix;
    this.#instances = instances;
    this.#leases = leases;
  }

  async appendEvents(on: MysqlQueryable, instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    await on.query(
      `INSERT INTO ${this.#p}events (instance_id, generation, run_id, shard, type, at, data) VALUES ${events.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      events.flatMap((event) => [
        instanceId,
        generation,
        event.runId ?? null,
        event.shard ?? null,
        event.type,
        event.at ?? Date.now(),
        JSON.stringify(event.data),
      ]),
    );
  }

  async listEvents(on: MysqlQueryable, instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const { rows } = await on.query(`SELECT * FROM ${this.#p}events WHERE instance_id = ? AND id > ? ORDER BY id${limit(options.limit)}`, [
      instanceId,
      options.afterId ?? 0,
    ]);
    return rows.map((row) => ({
      id: Number(row.id),
      instanceId: Number(row.instance_id),
      generation: Number(row.generation),
      runId: row.run_id === null ? null : Number(row.run_id),
      shard: row.shard === null ? null : String(row.shard),
      type: String(row.type),
      at: Number(row.at),
      data: JSON.parse(String(row.data)) as JsonObject,
    }));
  }

  async failureHistory(on: MysqlQueryable, instanceId: number): Promise<FailureHistory> {
    const { rows } = await on.query(
      `SELECT coalesce(sum(greatest(0, coalesce(ended_at, heartbeat_at) - started_at)), 0) AS running_ms, coalesce(sum(outcome = 'crashed'), 0) AS crashed
       FROM ${this.#p}runs WHERE instance_id = ?`,
      [instanceId],
    );
    return { runningMs: Number(rows[0]?.running_ms ?? 0), crashed: Number(rows[0]?.crashed ?? 0) };
  }

  async listRuns(on: MysqlQueryable, instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    const { rows } = await on.query(`SELECT * FROM ${this.#p}runs WHERE instance_id = ? ORDER BY id DESC${limit(options.limit)}`, [instanceId]);
    return rows.map(toRun);
  }

  async status(on: MysqlQueryable, instanceId: number): Promise<InstanceStatus> {
    const instance = await this.#instances.get(on, instanceId);
    const shards = await this.#instances.listShards(on, instanceId);
    const { rows } = await on.query(
      `SELECT max(c.created_at) AS at FROM ${this.#p}checkpoints c JOIN ${this.#p}shards s ON s.id = c.shard_id WHERE s.instance_id = ? AND s.generation = ?`,
      [instanceId, instance.generation],
    );
    return {
      instance,
      shards: {
        total: shards.length,
        completed: shards.filter((shard) => shard.status === 'completed').length,
        running: shards.filter((shard) => shard.status === 'running').length,
      },
      processed: shards.reduce((sum, shard) => sum + shard.processed, 0),
      lastCheckpointAt: rows[0]?.at == null ? null : Number(rows[0].at),
      holders: await this.#leases.holders(on, instanceId),
    };
  }
}

/** MySQL has no `LIMIT NULL`: no clause at all for "every row". */
function limit(count: number | undefined): string {
  return count === undefined || count === null ? '' : ` LIMIT ${Math.max(0, Math.floor(Number(count)))}`;
}
