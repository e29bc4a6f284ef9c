import { mysqlDialect } from '../mysql/mysql-dialect.ts';
import { postgresDialect } from '../postgres/postgres-dialect.ts';
import { sqliteDialect } from '../sqlite/sqlite-dialect.ts';
import type { Dialect, SqlDialect } from './dialect.ts';

/** Every dialect by name: what batch-sql, keyset-sql and job-sql ask. */
export const dialects: Readonly<Record<SqlDialect, Dialect>> = { sqlite: sqliteDialect, postgres: postgresDialect, mysql: mysqlDialect };

/** The dialect object of a dialect's name (SQLite's for an unknown one, as `ctx.tx` always assumed). */
export function dialect(name: string): Dialect {
  return dialects[name as SqlDialect] ?? sqliteDialect;
}
