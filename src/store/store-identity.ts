// The store-identity rule: a store whose checkpoints are gone while its effect journal or event
// log remains is refused, never taken for a new one. A new store would start every job at
// record 0 and run its effects again, `scope: 'instance'` ones included, though the journal (or
// the audit chain) says they ran. Each backend checks what can go missing cheaply at open.
import { StoreError, StoreIdentityError } from '../errors.ts';

/**
 * Instances whose event chain (a `chain_heads` row) survives while their `instances` row is gone:
 * emptied or deleted rows, or an older copy restored over a newer store.
 */
export function missingInstancesError(location: string, missing: readonly number[], advice: string): StoreIdentityError {
  return new StoreIdentityError(
    `the store ${location} has lost job instances (id ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}) whose event log remains: ` +
      `their checkpoints are gone, and running them again would start over and repeat their effects; ${advice}`,
  );
}

/**
 * The names of the tables and indexes that `statements` create (`CREATE [UNIQUE] TABLE|INDEX
 * [IF NOT EXISTS] name`): what a store about to be created would take in its database or file.
 */
export function namesCreatedBy(statements: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const statement of statements) {
    for (const match of statement.matchAll(/CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\s+(?:IF\s+NOT\s+EXISTS\s+)?[`"]?(\w+)/gi)) names.add(match[1] as string);
  }
  return names;
}

/**
 * A store about to be created where tables of the same names already exist (another
 * application's SQLite file, a MySQL database and a `?prefix=` that name its tables) is refused
 * before anything is written: creating ours would fail halfway or, where a migration runs
 * `CREATE TABLE IF NOT EXISTS` and `ALTER TABLE`, adopt and alter the other application's
 * table (MySQL: an empty prefix added our columns to a job's own `runs`).
 */
export function foreignTablesError(location: string, found: readonly string[], advice: string): StoreError {
  const shown = found.slice(0, 5).join(', ') + (found.length > 5 ? ', …' : '');
  return new StoreError(`${location} is not a checkpointed store, but already holds tables the store would create (${shown}); ${advice}`);
}
