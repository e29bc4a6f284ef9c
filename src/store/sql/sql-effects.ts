import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectScope } from '../store.ts';
import type { SqlDriver } from './sql-driver.ts';

/**
 * An effect key's journal entry on a SQL server, read on any pooled connection. Each server's
 * journal finds a key its own way (`by`): PostgreSQL by the key itself, MySQL by its sha256
 * (a key can be longer than an index allows); their batch writes are each server's own.
 */
export async function readEffect(db: SqlDriver, scope: EffectScope, key: string, by: { column: string; value: string }): Promise<EffectEntry | undefined> {
  const rows = await db.rows(`SELECT * FROM ${db.prefix}effects WHERE instance_id = ? AND generation = ? AND ${by.column} = ?`, [
    scope.instanceId,
    scope.generation,
    by.value,
  ]);
  const row = rows[0];
  return row === undefined ? undefined : toEffect(key, row);
}
