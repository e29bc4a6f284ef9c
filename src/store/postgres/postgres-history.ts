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
    const values = [instanceId, eventsJson(chained.rows, generation), chained.head.seq, chained.head.hash, cached.seq, cached.hash];
    const gate = 'EXISTS (SELECT 1 FROM head)';
    const inserted = await db.rows(
      `WITH head AS (UPDATE ${s}chain_heads SET seq = $3, hash = $4 WHERE instance_id = $1 AND seq = $5 AND hash = $6 RETURNING 1)
       ${insertEvents(s, 2, gate)} RETURNING 1`,
      values,
    );
    if (inserted.length === events.length) {
      db.chainHeads.set(instanceId, chained.head);
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
  const chained = chainEvents(instanceId, generation, { seq: Number(head.seq), hash: String(head.hash) }, events, db.chainKey(), db.clockOffsetMs);
  await client.query(`WITH added AS (${insertEvents(s, 2, 'true')}) UPDATE ${s}chain_heads SET seq = $3, hash = $4 WHERE instance_id = $1`, [
    instanceId,
    eventsJson(chained.rows, generation),
    chained.head.seq,
    chained.head.hash,
  ]);
  // The head this process last wrote: the fast appends link from it (a rollback only sends them the locked way).
  db.chainHeads.set(instanceId, chained.head);
}

/**
 * The events' insert: instance $1, the rows from the JSON text `$n` (eventsJson), in its order
 * (ids ascend with chain positions), only where `gate` holds. One JSON text, not an array a
 * column: pg escapes every element of an array on the client and the server parses each array,
 * which made a 20-event insert ~1.6 × as long (bench, 2026-12-07 reading).
 */
export function insertEvents(s: string, n: number, gate: string): string {
  return `INSERT INTO ${s}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed)
    SELECT $1, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed
    FROM ROWS FROM (json_to_recordset($${n}::json) AS (generation int, run_id bigint, shard text, type text, at bigint, data text,
      seq bigint, prev_hash text, hash text, keyed boolean)) WITH ORDINALITY AS e(generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed, n)
    WHERE ${gate} ORDER BY n`;
}

/** Chained events as insertEvents reads them: each row's generation (`generation`, or the row's own), fields and link. */
export function eventsJson(rows: readonly (ChainedRow & { generation?: number })[], generation?: number): string {
  return JSON.stringify(
    rows.map((row) => ({
      generation: row.generation ?? generation,
      run_id: row.runId,
      shard: row.shard === null ? null : wellFormed(row.shard),
      type: wellFormed(row.type),
      at: row.at,
      data: row.data,
      seq: row.link.seq,
      prev_hash: row.link.prevHash,
      hash: row.link.hash,
      keyed: row.link.keyed,
    })),
  );
}

/**
 * `text` as PostgreSQL can take it in JSON: a lone surrogate becomes U+FFFD, as it does when pg
 * sends a string as UTF-8 (JSON would carry it as an escape the server refuses).
 */
export function wellFormed(text: string): string {
  const value = text as string & { isWellFormed(): boolean; toWellFormed(): string };
  return value.isWellFormed() ? text : value.toWellFormed();
}
