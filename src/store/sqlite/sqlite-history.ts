import { type Row, toEvent, toInstance, toRun, toStatus } from '../rows.ts';
import type { FailureHistory, HistoryStore, InstanceStatus, InstanceStore, LeaseStore, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

/** The event log, runs and status of a SQLite store. */
export class SqliteHistory implements HistoryStore {
  readonly #db: SqliteDriver;
  readonly #instances: Pick<InstanceStore, 'listShards'>;
  readonly #leases: Pick<LeaseStore, 'holders'>;

  constructor(driver: SqliteDriver, instances: Pick<InstanceStore, 'listShards'>, leases: Pick<LeaseStore, 'holders'>) {
    this.#db = driver;
    this.#instances = instances;
    this.#leases = leases;
  }

  async appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    this.#db.write(() => {
      const insert = this.#db.statement('INSERT INTO events (instance_id, generation, run_id, shard, type, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)');
      for (const event of events) {
        insert.run(instanceId, generation, event.runId ?? null, event.shard ?? null, event.type, event.at ?? Date.now(), JSON.stringify(event.data));
      }
    });
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    return this.#db
      .all('SELECT * FROM events WHERE instance_id = ? AND id > ? ORDER BY id LIMIT ?', instanceId, options.afterId ?? 0, options.limit ?? -1)
      .map(toEvent);
  }

  async failureHistory(instanceId: number): Promise<FailureHistory> {
    const row = this.#db.get(
      `SELECT coalesce(sum(max(0, coalesce(ended_at, heartbeat_at) - started_at)), 0) AS running_ms,
              coalesce(sum(outcome = 'crashed'), 0) AS crashed
       FROM runs WHERE instance_id = ?`,
      instanceId,
    ) as Row;
    return { runningMs: Number(row.running_ms), crashed: Number(row.crashed) };
  }

  async listRuns(instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    return this.#db.all('SELECT * FROM runs WHERE instance_id = ? ORDER BY id DESC LIMIT ?', instanceId, options.limit ?? -1).map(toRun);
  }

  async status(instanceId: number): Promise<InstanceStatus> {
    const instance = toInstance(this.#db.get('SELECT * FROM instances WHERE id = ?', instanceId) as Row);
    const last = this.#db.get(
      'SELECT max(c.created_at) AS at FROM checkpoints c JOIN shards s ON s.id = c.shard_id WHERE s.instance_id = ? AND s.generation = ?',
      instanceId,
      instance.generation,
    );
    return toStatus(instance, await this.#instances.listShards(instanceId), last?.at, await this.#leases.holders(instanceId));
  }
}
