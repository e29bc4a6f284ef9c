import { type ChainedRow, chainEvents, GENESIS } from '../audit-chain.ts';
import { type Row, toEvent, toInstance, toRun, toStatus } from '../rows.ts';
import type { ChainHead, FailureHistory, HistoryStore, InstanceStatus, InstanceStore, LeaseStore, NewEvent, RunInfo, StoredEvent } from '../store.ts';
import type { PostgresDriver } from './postgres-driver.ts';

/**
 * Link `events` into the instance's chain and insert them. Two ways, one outcome:
 * - fast: one autocommit statement that moves the head from the link this process last wrote
 *   (cached) and inserts the events only if the head was still there; the usual case for a
 *   shard's worker;
 * - locked: when nothing is cached or another worker moved the head, a short transaction that
 *   takes the head row's lock first (held to COMMIT), links from what it reads, and writes.
 * Either way the head row's lock orders the appends of every worker on the instance, so ids and
 * chain positions ascend together.
 */
export async function appendChained(db: PostgresDriver, instanceId: number, generation: number, events: readonly NewEvent[]): Promise<void> {
  const s = db.s;
  const key = db.chainKey();
  const cached = db.chainHeads.get(instanceId);
  if (cached !== undefined) {
    const chained = chainEvents(instanceId, generation, cached, events, key, db.clockOffsetMs);
    const values = [...eventValues(instanceId, generation, chained.rows), chained.head.seq, chained.head.hash, cached.seq, cached.hash];
    const gate = 'EXISTS (SELECT 1 FROM head)';
    const inserted = await db.query(
      `WITH head AS (UPDATE ${s}chain_heads SET seq = $12, hash = $13 WHERE instance_id = $1 AND seq = $14 AND hash = $15 RETURNING 1)
       ${insertEvents(s, gate)} RETURNING 1`,
      values,
    );
    if (inserted.length === events.length) {
      db.chainHeads.set(instanceId, chained.head);
      return;
    }
  }
  await db.transaction(async (client) => {
    const head = (
      await client.query(
        `INSERT INTO ${s}chain_heads (instance_id, seq, hash) VALUES ($1, 0, $2)
         ON CONFLICT (instance_id) DO UPDATE SET seq = ${s}chain_heads.seq RETURNING seq, hash`,
        [instanceId, GENESIS],
      )
    ).rows[0] as Row;
    const chained = chainEvents(instanceId, generation, { seq: Number(head.seq), hash: String(head.hash) }, events, key, db.clockOffsetMs);
    await client.query(`WITH added AS (${insertEvents(s, 'true')}) UPDATE ${s}chain_heads SET seq = $12, hash = $13 WHERE instance_id = $1`, [
      ...eventValues(instanceId, generation, chained.rows),
      chained.head.seq,
      chained.head.hash,
    ]);
    db.chainHeads.set(instanceId, chained.head);
  });
}

/** The events' insert, $1–$11 (see eventValues), only where `gate` holds. */
function insertEvents(s: string, gate: string): string {
  return `INSERT INTO ${s}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed)
    SELECT $1, $2, run_id, shard, type, at, data, seq, prev_hash, hash, keyed
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::boolean[])
      WITH ORDINALITY AS e(run_id, shard, type, at, data, seq, prev_hash, hash, keyed, n)
    WHERE ${gate} ORDER BY n`;
}

function eventValues(instanceId: number, generation: number, rows: readonly ChainedRow[]): unknown[] {
  return [instanceId, generation, ...eventColumns(rows)];
}

/**
 * Chained events as the nine arrays an `unnest` of the events table takes, in its column order
 * after generation: run_id, shard, type, at, data, seq, prev_hash, hash, keyed.
 */
export function eventColumns(rows: readonly ChainedRow[]): unknown[][] {
  return [
    rows.map((row) => row.runId),
    rows.map((row) => row.shard),
    rows.map((row) => row.type),
    rows.map((row) => row.at),
    rows.map((row) => row.data),
    rows.map((row) => row.link.seq),
    rows.map((row) => row.link.prevHash),
    rows.map((row) => row.link.hash),
    rows.map((row) => row.link.keyed),
  ];
}

/** The event log (hash-chained, written in its own short transactions), runs and status of a PostgreSQL store. */
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
    await appendChained(this.#db, instanceId, generation, events);
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const rows = await this.#db.query(`SELECT * FROM ${this.#db.s}events WHERE instance_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [
      instanceId,
      options.afterId ?? 0,
      options.limit ?? null,
    ]);
    return rows.map(toEvent);
  }

  async chainHead(instanceId: number): Promise<ChainHead | undefined> {
    const row = (await this.#db.query(`SELECT seq, hash FROM ${this.#db.s}chain_heads WHERE instance_id = $1`, [instanceId]))[0];
    return row === undefined ? undefined : { seq: Number(row.seq), hash: String(row.hash) };
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
