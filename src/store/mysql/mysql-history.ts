import { type ChainedRow, chainEvents, GENESIS } from '../audit-chain.ts';
import { type Row, toEvent, toInstance, toRun, toStatus } from '../rows.ts';
import type { ChainHead, FailureHistory, HistoryStore, InstanceStatus, InstanceStore, LeaseStore, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import type { MysqlDriver, MysqlQueryable } from './mysql-driver.ts';

/** One chained event as the events table's row, in its column order (instance_id … keyed). */
export function eventRow(instanceId: number, generation: number, row: ChainedRow): unknown[] {
  return [instanceId, generation, row.runId, row.shard, row.type, row.at, row.data, row.link.seq, row.link.prevHash, row.link.hash, row.link.keyed ? 1 : 0];
}

/**
 * Link `events` into the instance's chain and insert them, inside the caller's transaction on
 * `on`. The chain head's row lock (taken by the upsert, held to COMMIT) serialises the appends of
 * every worker on the instance, so ids and chain positions ascend together.
 */
export async function appendChained(db: MysqlDriver, on: MysqlQueryable, instanceId: number, generation: number, events: readonly NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  const p = db.p;
  await on.query(`INSERT INTO ${p}chain_heads (instance_id, seq, hash) VALUES (?, 0, ?) ON DUPLICATE KEY UPDATE seq = seq`, [instanceId, GENESIS]);
  const head = (await on.query(`SELECT seq, hash FROM ${p}chain_heads WHERE instance_id = ? FOR UPDATE`, [instanceId])).rows[0] as Row;
  const chained = chainEvents(instanceId, generation, { seq: Number(head.seq), hash: String(head.hash) }, events, db.chainKey(), db.clockOffsetMs);
  // One multi-row insert: ids follow the events' order.
  await on.query(
    `INSERT INTO ${p}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed) VALUES ${chained.rows.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
    chained.rows.flatMap((row) => eventRow(instanceId, generation, row)),
  );
  await on.query(`UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ?`, [chained.head.seq, chained.head.hash, instanceId]);
}

/** The event log (hash-chained, written in its own short transactions), runs and status of a MySQL/MariaDB store. */
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
    await this.#db.transaction((on) => appendChained(this.#db, on, instanceId, generation, events));
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.p}events WHERE instance_id = ? AND id > ? ORDER BY id${limit(options.limit)}`, [
      instanceId,
      options.afterId ?? 0,
    ]);
    return rows.map(toEvent);
  }

  async chainHead(instanceId: number): Promise<ChainHead | undefined> {
    const row = (await this.#db.rows(`SELECT seq, hash FROM ${this.#db.p}chain_heads WHERE instance_id = ?`, [instanceId]))[0];
    return row === undefined ? undefined : { seq: Number(row.seq), hash: String(row.hash) };
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
