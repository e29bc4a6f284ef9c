import { chainGenerations, type GenerationEvent } from '../audit-chain.ts';
import { type Row, toEvent, toInstance, toRun, toStatus } from '../rows.ts';
import type { ChainHead, FailureHistory, HistoryStore, InstanceStatus, InstanceStore, LeaseStore, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

/**
 * Link `events` into the instance's chain and insert them, in the side file's open write
 * transaction: its lock (one writer per file, across processes) is what makes concurrent
 * appends one chain.
 */
export function appendChained(db: SqliteDriver, instanceId: number, generation: number, events: readonly NewEvent[]): void {
  appendChainedGenerations(
    db,
    instanceId,
    events.map((event) => ({ generation, event })),
  );
}

/** appendChained for events of several generations of the instance (a journal batch), in their order. */
export function appendChainedGenerations(db: SqliteDriver, instanceId: number, events: readonly GenerationEvent[]): void {
  if (events.length === 0) return;
  const head = db.sideStatement('SELECT seq, hash FROM chain_heads WHERE store_id = ? AND instance_id = ?').get(db.storeId, instanceId);
  const chained = chainGenerations(instanceId, head === undefined ? undefined : { seq: Number(head.seq), hash: String(head.hash) }, events, db.chainKey());
  const insert = db.sideStatement(
    'INSERT INTO events (store_id, instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  for (const row of chained.rows) {
    const { seq, prevHash, hash, keyed } = row.link;
    insert.run(db.storeId, instanceId, row.generation, row.runId, row.shard, row.type, row.at, row.data, seq, prevHash, hash, keyed ? 1 : 0);
  }
  db.sideStatement(
    'INSERT INTO chain_heads (store_id, instance_id, seq, hash) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET seq = excluded.seq, hash = excluded.hash',
  ).run(db.storeId, instanceId, chained.head.seq, chained.head.hash);
}

/** The event log (in the side file, hash-chained), runs and status of a SQLite store. */
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
    this.#db.sideWrite(() => appendChained(this.#db, instanceId, generation, events));
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    return (
      this.#db
        .sideStatement('SELECT * FROM events WHERE store_id = ? AND instance_id = ? AND id > ? ORDER BY id LIMIT ?')
        .all(this.#db.storeId, instanceId, options.afterId ?? 0, options.limit ?? -1) as Row[]
    ).map(toEvent);
  }

  async chainHead(instanceId: number): Promise<ChainHead | undefined> {
    const row = this.#db.sideStatement('SELECT seq, hash FROM chain_heads WHERE store_id = ? AND instance_id = ?').get(this.#db.storeId, instanceId);
    return row === undefined ? undefined : { seq: Number(row.seq), hash: String(row.hash) };
  }

  /** The key record (sqlite-key-record.ts) refuses a wrong or missing key when the run loads it. */
  async checkChainKey(): Promise<void> {}

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
