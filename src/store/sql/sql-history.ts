import { type Row, toEvent, toInstance, toRun, toStatus } from '../rows.ts';
import type { ChainHead, FailureHistory, HistoryStore, InstanceStatus, InstanceStore, LeaseStore, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import { checkChainKeyNow } from './chain-key-check.ts';
import type { SqlBackend, SqlDriver } from './sql-driver.ts';

/**
 * The event log (hash-chained; each server appends in its own short transactions, see its
 * backend's appendChained), runs and status of a SQL server store.
 */
export class SqlHistory implements HistoryStore {
  readonly #db: SqlDriver;
  readonly #appendChained: SqlBackend<unknown>['appendChained'];
  readonly #instances: Pick<InstanceStore, 'listShards'>;
  readonly #leases: Pick<LeaseStore, 'holders'>;

  constructor(
    driver: SqlDriver,
    appendChained: SqlBackend<unknown>['appendChained'],
    instances: Pick<InstanceStore, 'listShards'>,
    leases: Pick<LeaseStore, 'holders'>,
  ) {
    this.#db = driver;
    this.#appendChained = appendChained;
    this.#instances = instances;
    this.#leases = leases;
  }

  async appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.#appendChained(instanceId, generation, events);
  }

  async checkChainKey(instanceId: number): Promise<void> {
    await checkChainKeyNow(this.#db, instanceId);
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const { prefix: p, dialect } = this.#db;
    const rows = await this.#db.rows(`SELECT * FROM ${p}events WHERE instance_id = ? AND id > ? ORDER BY id${dialect.limit(options.limit)}`, [
      instanceId,
      options.afterId ?? 0,
    ]);
    return rows.map(toEvent);
  }

  async chainHead(instanceId: number): Promise<ChainHead | undefined> {
    const row = (await this.#db.rows(`SELECT seq, hash FROM ${this.#db.prefix}chain_heads WHERE instance_id = ?`, [instanceId]))[0];
    return row === undefined ? undefined : { seq: Number(row.seq), hash: String(row.hash) };
  }

  async failureHistory(instanceId: number): Promise<FailureHistory> {
    const rows = await this.#db.rows(
      `SELECT coalesce(sum(greatest(0, coalesce(ended_at, heartbeat_at) - started_at)), 0) AS running_ms,
              coalesce(sum(CASE WHEN outcome = 'crashed' THEN 1 ELSE 0 END), 0) AS crashed
       FROM ${this.#db.prefix}runs WHERE instance_id = ?`,
      [instanceId],
    );
    return { runningMs: Number(rows[0]?.running_ms ?? 0), crashed: Number(rows[0]?.crashed ?? 0) };
  }

  async listRuns(instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    const { prefix: p, dialect } = this.#db;
    const rows = await this.#db.rows(`SELECT * FROM ${p}runs WHERE instance_id = ? ORDER BY id DESC${dialect.limit(options.limit)}`, [instanceId]);
    return rows.map(toRun);
  }

  async status(instanceId: number): Promise<InstanceStatus> {
    const p = this.#db.prefix;
    const instance = toInstance((await this.#db.rows(`SELECT * FROM ${p}instances WHERE id = ?`, [instanceId]))[0] as Row);
    const last = await this.#db.rows(
      `SELECT max(c.created_at) AS at FROM ${p}checkpoints c JOIN ${p}shards sh ON sh.id = c.shard_id WHERE sh.instance_id = ? AND sh.generation = ?`,
      [instanceId, instance.generation],
    );
    return toStatus(instance, await this.#instances.listShards(instanceId), last[0]?.at, await this.#leases.holders(instanceId));
  }
}
