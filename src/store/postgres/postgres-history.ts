import { type ChainedRow, chainEvents, GENESIS } from '../audit-chain.ts';
import type { Row } from '../rows.ts';
import type { SqlQueryable } from '../sql/sql-driver.ts';
import type { NewEvent } from '../store.ts';
import type { PostgresDriver } from './postgres-driver.ts';

/**
 * PostgreSQL's own way to append to the event chain (the history's other reads are the shared
 * SqlHistory's). Link `events` into the instance's chain and insert them. Two ways, one outcome:
 * - fast: one autocommit statement that moves the head from the link this process last wrote
 *   (cached) and inserts the events only if the head was still there; the usual case for a
 *   shard's worker;
 * - locked: when nothing is cached or another worker moved the head, a short transaction that
 *   takes the head row's lock first (held to COMMIT), links from what it reads, and writes.
 * Either way the head row's lock orders the appends of every worker on the instance, so ids and
 * chain positions ascend together.
 */
export async function appendChained(db: PostgresDriver, instanceId: number, generation: number, events: readonly NewEvent[]): Promise<void> {
  const s = db.prefix;
  const key = db.chainKey();
  const cached = db.chainHeads.get(instanceId);
  if (cached !== undefined) {
    const chained = chainEvents(instanceId, generation, cached, events, key, db.clockOffsetMs);
    const values = [...eventValues(instanceId, generation, chained.rows), chained.head.seq, chained.head.hash, cached.seq, cached.hash];
    const gate = 'EXISTS (SELECT 1 FROM head)';
    const inserted = await db.rows(
      `WITH head AS (UPDATE ${s}chain_heads SET seq = $12, hash = $13 WHERE instance_id = $1 AND seq = $14 AND hash = $15 RETURNING 1)
       ${insertEvents(s, gate)} RETURNING 1`,
      values,
    );
    if (inserted.length === events.length) {
      db.chainHeads.set(instanceId, chained.head);
      db.chainKeyCheck.linked(instanceId, chained.head);
      return;
    }
  }
  await db.transaction((client) => appendChainedOn(db, client, instanceId, generation, events));
}

/**
 * The locked way on a transaction's `client`: takes the head row's lock (held to its COMMIT),
 * links `events` from what it reads, inserts them and moves the head. The guards' transactions
 * append their events this way too.
 */
export async function appendChainedOn(
  db: PostgresDriver,
  client: SqlQueryable,
  instanceId: number,
  generation: number,
  events: readonly NewEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const s = db.prefix;
  const head = (
    await client.query(
      `INSERT INTO ${s}chain_heads (instance_id, seq, hash) VALUES ($1, 0, $2)
       ON CONFLICT (instance_id) DO UPDATE SET seq = ${s}chain_heads.seq RETURNING seq, hash`,
      [instanceId, GENESIS],
    )
  ).rows[0] as Row;
  const from = { seq: Number(head.seq), hash: String(head.hash) };
  await db.chainKeyCheck.check(client, instanceId, from);
  const chained = chainEvents(instanceId, generation, from, events, db.chainKey(), db.clockOffsetMs);
  await client.query(`WITH added AS (${insertEvents(s, 'true')}) UPDATE ${s}chain_heads SET seq = $12, hash = $13 WHERE instance_id = $1`, [
    ...eventValues(instanceId, generation, chained.rows),
    chained.head.seq,
    chained.head.hash,
  ]);
  // The head this process last wrote: the fast appends link from it (a rollback only sends them the locked way).
  db.chainHeads.set(instanceId, chained.head);
  db.chainKeyCheck.linked(instanceId, chained.head);
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
