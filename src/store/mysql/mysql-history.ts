import { type ChainedRow, chainEvents, GENESIS } from '../audit-chain.ts';
import type { Row } from '../rows.ts';
import type { SqlQueryable } from '../sql/sql-driver.ts';
import type { NewEvent } from '../store.ts';
import type { MysqlDriver } from './mysql-driver.ts';

/** One chained event as the events table's row, in its column order (instance_id … keyed). */
export function eventRow(instanceId: number, generation: number, row: ChainedRow): unknown[] {
  return [instanceId, generation, row.runId, row.shard, row.type, row.at, row.data, row.link.seq, row.link.prevHash, row.link.hash, row.link.keyed ? 1 : 0];
}

/**
 * MySQL's own way to append to the event chain (the history's other reads are the shared
 * SqlHistory's). Link `events` into the instance's chain and insert them, inside the caller's transaction on
 * `on`. The chain head's row lock (taken by the upsert, held to COMMIT) serialises the appends of
 * every worker on the instance, so ids and chain positions ascend together.
 */
export async function appendChained(db: MysqlDriver, on: SqlQueryable, instanceId: number, generation: number, events: readonly NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  const p = db.prefix;
  await on.query(`INSERT INTO ${p}chain_heads (instance_id, seq, hash) VALUES (?, 0, ?) ON DUPLICATE KEY UPDATE seq = seq`, [instanceId, GENESIS]);
  const head = (await on.query(`SELECT seq, hash FROM ${p}chain_heads WHERE instance_id = ? FOR UPDATE`, [instanceId])).rows[0] as Row;
  const from = { seq: Number(head.seq), hash: String(head.hash) };
  await db.chainKeyCheck.check(on, instanceId, from);
  const chained = chainEvents(instanceId, generation, from, events, db.chainKey(), db.clockOffsetMs);
  // One multi-row insert: ids follow the events' order.
  await on.query(
    `INSERT INTO ${p}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed) VALUES ${chained.rows.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
    chained.rows.flatMap((row) => eventRow(instanceId, generation, row)),
  );
  await on.query(`UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ?`, [chained.head.seq, chained.head.hash, instanceId]);
  db.chainKeyCheck.linked(instanceId, chained.head);
}
