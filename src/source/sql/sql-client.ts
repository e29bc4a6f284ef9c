import type { DatabaseSync } from 'node:sqlite';
import { UsageError } from '../../errors.ts';

export type SqlDialect = 'sqlite' | 'postgres' | 'mysql';

/** The slice of `pg` a source uses: a `pg.Client`, a `pg.Pool` or anything with this method. */
export interface PgQuerier {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/** The slice of `mysql2/promise` a source uses: a connection or a pool. */
export interface MysqlQuerier {
  query(text: string, values?: unknown[]): Promise<[unknown, unknown]>;
}

/**
 * Where a SQL source reads from. A URL opens (and closes) its own connection for each read, so a
 * resumed or retried run never inherits a broken one; a ready client is the caller's to close.
 */
export type SqlConnection = string | { sqlite: Pick<DatabaseSync, 'prepare'> } | { postgres: PgQuerier } | { mysql: MysqlQuerier };

/** One open connection, whatever the database: rows as plain objects. */
export interface SqlReader {
  readonly dialect: SqlDialect;
  all(sql: string, params: readonly unknown[]): Promise<Record<string, unknown>[]>;
  /** Ends a connection the source opened from a URL; a no-op for a client the caller handed in. */
  close(): Promise<void>;
}

/** The dialect a connection speaks, without opening it. */
export function dialectOf(connection: SqlConnection): SqlDialect {
  if (typeof connection !== 'string') {
    if ('sqlite' in connection) return 'sqlite';
    if ('postgres' in connection) return 'postgres';
    if ('mysql' in connection) return 'mysql';
    throw new UsageError('a SQL source needs a URL or one of { sqlite }, { postgres }, { mysql }');
  }
  if (/^sqlite:/.test(connection)) return 'sqlite';
  if (/^postgres(?:ql)?:\/\//.test(connection)) return 'postgres';
  if (/^(?:mysql|mariadb):\/\//.test(connection)) return 'mysql';
  // The URL may hold a password: name only its scheme.
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(connection)?.[0] ?? 'a URL without a scheme';
  throw new UsageError(`a SQL source URL must start sqlite:, postgres:// or mysql:// (got ${scheme})`);
}

export async function openReader(connection: SqlConnection): Promise<SqlReader> {
  const dialect = dialectOf(connection);
  if (typeof connection !== 'string') return borrowedReader(connection);
  if (dialect === 'sqlite') return openSqlite(connection.replace(/^sqlite:(?:\/\/)?/, ''));
  if (dialect === 'postgres') return openPostgres(connection);
  return openMysql(connection.replace(/^mariadb:/, 'mysql:'));
}

function borrowedReader(connection: Exclude<SqlConnection, string>): SqlReader {
  const close = async () => undefined;
  if ('sqlite' in connection) {
    const db = connection.sqlite;
    return { dialect: 'sqlite', close, all: async (sql, params) => db.prepare(sql).all(...(params as never[])) as Record<string, unknown>[] };
  }
  if ('postgres' in connection) {
    const client = connection.postgres;
    return { dialect: 'postgres', close, all: async (sql, params) => (await client.query(sql, [...params])).rows };
  }
  const client = connection.mysql;
  return { dialect: 'mysql', close, all: async (sql, params) => (await client.query(sql, [...params]))[0] as Record<string, unknown>[] };
}

async function openSqlite(path: string): Promise<SqlReader> {
  const { DatabaseSync } = await import('node:sqlite');
  let db: DatabaseSync;
  try {
    // Read-only and one statement per page: no read transaction is held between pages, so a
    // long job never pins the WAL of a database that others (or its own ctx.tx) write to.
    db = new DatabaseSync(path, { readOnly: true, timeout: 5000 });
  } catch (error) {
    throw new UsageError(`cannot open the SQLite source database ${path}: ${(error as Error).message}`, { cause: error });
  }
  return {
    dialect: 'sqlite',
    all: async (sql, params) => db.prepare(sql).all(...(params as never[])) as Record<string, unknown>[],
    close: async () => {
      if (db.isOpen) db.close();
    },
  };
}

/** Imported on first use, so `import 'checkpointed'` never loads a database driver. */
async function importDriver<T>(specifier: string, hint: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (error) {
    throw new UsageError(`${hint}`, { cause: error });
  }
}

interface PgClient extends PgQuerier {
  connect(): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

async function openPostgres(url: string): Promise<SqlReader> {
  const specifier = 'pg';
  const pg = await importDriver<{ default: { Client: new (config: { connectionString: string }) => PgClient } }>(
    specifier,
    'a postgres:// source needs the pg package: npm install pg',
  );
  const client = new pg.default.Client({ connectionString: url });
  // A connection dropped while idle surfaces on the next query; without a listener it would crash the process.
  client.on('error', () => undefined);
  await client.connect();
  return {
    dialect: 'postgres',
    all: async (sql, params) => (await client.query(sql, [...params])).rows,
    close: () => client.end().catch(() => undefined),
  };
}

interface MysqlConnection extends MysqlQuerier {
  end(): Promise<void>;
}

async function openMysql(url: string): Promise<SqlReader> {
  const specifier = 'mysql2/promise';
  type Mysql = { createConnection(config: { uri: string }): Promise<MysqlConnection> };
  const module = await importDriver<Mysql & { default?: Mysql }>(specifier, 'a mysql:// source needs the mysql2 package: npm install mysql2');
  // mysql2 is CommonJS: its functions sit on the default export, and on the module when Node can see them.
  const connection = await (module.default ?? module).createConnection({ uri: url });
  return {
    dialect: 'mysql',
    all: async (sql, params) => (await connection.query(sql, [...params]))[0] as Record<string, unknown>[],
    close: () => connection.end().catch(() => undefined),
  };
}
