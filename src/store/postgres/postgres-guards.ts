import type { Row } from '../rows.ts';
import type { GuardDialect, GuardTx } from '../sql/guards.ts';
import type { SqlQueryable } from '../sql/sql-driver.ts';
import type { NewEvent } from '../store.ts';
import { postgresDialect } from './postgres-dialect.ts';
import type { PostgresDriver } from './postgres-driver.ts';
import { appendChainedOn } from './postgres-history.ts';

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
    chain: (instanceId: number, generation: number, events: readonly NewEvent[]) => appendChainedOn(db, client, instanceId, generation, events),
  };
}
