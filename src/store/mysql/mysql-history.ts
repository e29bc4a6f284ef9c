import { type Row, toEvent, toInstance, toRun, toStatus } from '../rows.ts';
import type { FailureHistory, HistoryStore, InstanceStatus, InstanceStore, LeaseStore, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import type { MysqlDriver } from './mysql-driver.ts';

/** The event log, runs and status of a MySQL/MariaDB store. */
export class MysqlHistory implements HistoryStore {
  readonly #db: MysqlDriver;
  readonly #instances: Pick<InstanceStore, 'listShards'>;
  readonly #leases: Pick<LeaseStore, 'holders'>;

  constructor(driver: MysqlDriver, instances: Pick<InstanceStore, 'listShards'>, leases: Pick<LeaseStore, 'holders'>) {
    this.#db = driver;
    this.#instances = instances;
    this.#leases = leases;
  }

  async appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    // One multi-row insert: ids follow the events' order.
    await this.#db.query(
      `INSERT INTO ${this.#db.p}events (instance_id, generation, run_id, shard, type, at, data) VALUES ${events.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
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

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.p}events WHERE instance_id = ? AND id > ? ORDER BY id${limit(options.limit)}`, [
      instanceId,
      options.afterId ?? 0,
    ]);
    return rows.map(toEvent);
  }

  async failureHistory(instanceId: number): Promise<FailureHistory> {
    const rows = await this.#db.rows(
      `SELECT coalesce(sum(greatest(0, coalesce(ended_at, heartbeat_at) - started_at)), 0) AS running_ms, coalesce(sum(outcome = 'crashed'), 0) AS crashed
       FROM ${this.#db.p}runs WHERE instance_id = ?`,
      [instanceId],
    );
    return { runningMs: Number(rows[0]?.running_ms ?? 0), crashed: Number(rows[0]?.crashed ?? 0) };
  }

  async listRuns(instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.p}runs WHERE instance_id = ? ORDER BY id DESC${limit(options.limit)}`, [instanceId]);
    return rows.map(toRun);
  }

  async status(instanceId: number): Promise<InstanceStatus> {
    const p = this.#db.p;
    const instance = toInstance((await this.#db.rows(`SELECT * FROM ${p}instances WHERE id = ?`, [instanceId]))[0] as Row);
    const last = await this.#db.rows(
      `SELECT max(c.created_at) AS at FROM ${p}checkpoints c JOIN ${p}shards sh ON sh.id = c.shard_id WHERE sh.instance_id = ? AND sh.generation = ?`,
      [instanceId, instance.generation],
    );
    return toStatus(instance, await this.#instances.listShards(instanceId), last[0]?.at, await this.#leases.holders(instanceId));
  }
}

/** MySQL has no `LIMIT NULL`: no clause at all for "every row". */
function limit(count: number | undefined): string {
  return count === undefined || count === null ? '' : ` LIMIT ${Math.max(0, Math.floor(Number(count)))}`;
}
