import { chainEvents, GENESIS } from '../audit-chain.ts';
import type { Row } from '../rows.ts';
import type { GuardDialect, GuardTx } from '../sql/guards.ts';
import type { SqlQueryable } from '../sql/sql-driver.ts';
import type { NewEvent } from '../store.ts';
import { postgresDialect } from './postgres-dialect.ts';
import type { PostgresDriver } from './postgres-driver.ts';
import { eventColumns } from './postgres-history.ts';

/** `{t}` as the store's schema, `?` placeholders in the dialect's (`$1`, `$2`, …). */
function spell(s: string, sql: string): string {
  return postgresDialect.parameters(sql.replaceAll('{t}', s));
}

/** The guards' SQL (sql/guards.ts) as PostgreSQL speaks it. */
export function postgresGuardDialect(db: PostgresDriver): GuardDialect {
  const s = db.prefix;
  return {
    transaction: (work) => db.transaction((client) => work(guardTx(db, client))),
    rows: (sql, values) => db.rows(spell(s, sql), values),
    keepExisting: (conflict) => `ON CONFLICT (${conflict}) DO NOTHING`,
    addTo: (conflict, table, column) => `ON CONFLICT (${conflict}) DO UPDATE SET ${column} = ${s}${table}.${column} + excluded.${column}`,
    shareLock: 'FOR SHARE',
    effectKey: { column: 'key', value: (key) => key },
  };
}

/** A transaction's client as GuardTx: statements, and chained appends under the head's row lock. */
export function guardTx(db: PostgresDriver, client: SqlQueryable): GuardTx {
  const s = db.prefix;
  return {
    rows: async (sql, values) => (await client.query(spell(s, sql), values)).rows as Row[],
    chain: async (instanceId: number, generation: number, events: readonly NewEvent[]) => {
      if (events.length === 0) return;
      const head = (
        await client.query(
          `INSERT INTO ${s}chain_heads (instance_id, seq, hash) VALUES ($1, 0, $2)
           ON CONFLICT (instance_id) DO UPDATE SET seq = ${s}chain_heads.seq RETURNING seq, hash`,
          [instanceId, GENESIS],
        )
      ).rows[0] as Row;
      const chained = chainEvents(instanceId, generation, { seq: Number(head.seq), hash: String(head.hash) }, events, db.chainKey(), db.clockOffsetMs);
      await client.query(
        `WITH added AS (
           INSERT INTO ${s}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed)
           SELECT $1, $2, run_id, shard, type, at, data, seq, prev_hash, hash, keyed
           FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::boolean[])
             WITH ORDINALITY AS e(run_id, shard, type, at, data, seq, prev_hash, hash, keyed, n)
           ORDER BY n)
         UPDATE ${s}chain_heads SET seq = $12, hash = $13 WHERE instance_id = $1`,
        [instanceId, generation, ...eventColumns(chained.rows), chained.head.seq, chained.head.hash],
      );
      // The head this process last wrote: the fast appends link from it (a rollback only sends them the locked way).
      db.chainHeads.set(instanceId, chained.head);
    },
  };
}
