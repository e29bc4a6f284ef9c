import { type Row, toEvent, toInstance, toRun, toStatus } from '../rows.ts';
import type { FailureHistory, HistoryStore, InstanceStatus, InstanceStore, LeaseStore, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import type { PostgresDriver } from './postgres-driver.ts';

/** The event log, runs and status of a PostgreSQL store. */
export class PostgresHistory implements HistoryStore {
  readonly #db: PostgresDriver;
  readonly #instances: Pick<InstanceStore, 'listShards'>;
  readonly #leases: Pick<LeaseStore, 'holders'>;

  constructor(driver: PostgresDriver, instances: Pick<InstanceStore, 'listShards'>, leases: Pick<LeaseStore, 'holders'>) {
    this.#db = driver;
    this.#instances = instances;
    this.#leases = leases;
  }

  async appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.#db.query(
      `INSERT INTO ${this.#db.s}events (instance_id, generation, run_id, shard, type, at, data)
       SELECT $1, $2, run_id, shard, type, at, data FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[])
         WITH ORDINALITY AS e(run_id, shard, type, at, data, n) ORDER BY n`,
      [
        instanceId,
        generation,
        events.map((event) => event.runId ?? null),
        events.map((event) => event.shard ?? null),
        events.map((event) => event.type),
        events.map((event) => event.at ?? Date.now()),
        events.map((event) => JSON.stringify(event.data)),
      ],
    );
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const rows = await this.#db.query(`SELECT * FROM ${this.#db.s}events WHERE instance_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [
      instanceId,
      options.afterId ?? 0,
      options.limit ?? null,
    ]);
    return rows.map(toEvent);
  }

  async failureHistory(instanceId: number): Promise<FailureHistory> {
    const rows = await this.#db.query(
      `SELECT coalesce(sum(greatest(0, coalesce(ended_at, heartbeat_at) - started_at)), 0) AS running_ms,
              count(*) FILTER (WHERE outcome = 'crashed') AS crashed
       FROM ${this.#db.s}runs WHERE instance_id = $1`,
      [instanceId],
    );
    return { runningMs: Number(rows[0]?.running_ms ?? 0), crashed: Number(rows[0]?.crashed ?? 0) };
  }

  async listRuns(instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    const rows = await this.#db.query(`SELECT * FROM ${this.#db.s}runs WHERE instance_id = $1 ORDER BY id DESC LIMIT $2`, [instanceId, options.limit ?? null]);
    return rows.map(toRun);
  }

  async status(instanceId: number): Promise<InstanceStatus> {
    const s = this.#db.s;
    const instance = toInstance((await this.#db.query(`SELECT * FROM ${s}instances WHERE id = $1`, [instanceId]))[0] as Row);
    const last = await this.#db.query(
      `SELECT max(c.created_at) AS at FROM ${s}checkpoints c JOIN ${s}shards sh ON sh.id = c.shard_id WHERE sh.instance_id = $1 AND sh.generation = $2`,
      [instanceId, instance.generation],
    );
    return toStatus(instance, await this.#instances.listShards(instanceId), last[0]?.at, await this.#leases.holders(instanceId));
  }
}
