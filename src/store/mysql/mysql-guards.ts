import { createHash } from 'node:crypto';
import type { GuardDialect, GuardTx } from '../sql/guards.ts';
import type { MysqlDriver, MysqlQueryable } from './mysql-driver.ts';
import { appendChained } from './mysql-history.ts';

/** The guards' SQL (sql/guards.ts) as MySQL/MariaDB speaks it: `?` already, `{t}` the table prefix. */
export function mysqlGuardDialect(db: MysqlDriver): GuardDialect {
  const p = db.prefix;
  return {
    transaction: (work) => db.transaction((on) => work(guardTx(db, on))),
    rows: (sql, values) => db.rows(sql.replaceAll('{t}', p), values),
    // A no-op update, not INSERT IGNORE: that would hide every other error of the insert too.
    keepExisting: (conflict) => `ON DUPLICATE KEY UPDATE ${conflict.split(',')[0]?.trim()} = ${conflict.split(',')[0]?.trim()}`,
    addTo: (_conflict, _table, column) => `ON DUPLICATE KEY UPDATE ${column} = ${column} + VALUES(${column})`,
    shareLock: 'LOCK IN SHARE MODE',
    effectKey: { column: 'key_hash', value: (key) => createHash('sha256').update(key).digest('hex') },
  };
}

/** A transaction's connection as GuardTx: statements, and chained appends under the head's row lock. */
export function guardTx(db: MysqlDriver, on: MysqlQueryable): GuardTx {
  return {
    rows: async (sql, values) => (await on.query(sql.replaceAll('{t}', db.prefix), values)).rows,
    chain: (instanceId, generation, events) => appendChained(db, on, instanceId, generation, events),
  };
}
