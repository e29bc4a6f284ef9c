import type { DatabaseSync } from 'node:sqlite';
import { UsageError } from '../../errors.ts';

import type { SqlDialect } from '../../store/sql/dialect.ts';

export type { SqlDialect } from '../../store/sql/dialect.ts';

/**
 * The slice of `pg` a source uses: a `pg.Client`, a `pg.Pool` or anything with this method. The
 * query comes as `pg` takes it: `queryMode: 'extended'` sends it as one prepared statement.
 */
export interface PgQuerier {
  query(config: { text: string; values: unknown[]; queryMode: 'extended' }): Promise<{ rows: Record<string, unknown>[] }>;
}

/** The slice of `mysql2/promise` a source uses: a connection or a pool (prepared statements). */
export interface MysqlQuerier {
  execute(text: string, values?: unknown[]): Promise<[unknown, unknown]>;
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
  const reader = await openAny(connection);
  const all = reader.all;
  return {
    ...reader,
    all: (sql, params) =>
      all(sql, params).catch((error: unknown) => {
        throw missingName(reader.dialect, error) ?? error;
      }),
  };
}

async function openAny(connection: SqlConnection): Promise<SqlReader> {
  const dialect = dialectOf(connection);
  if (typeof connection !== 'string') return borrowedReader(connection);
  if (dialect === 'sqlite') return openSqlite(connection.replace(/^sqlite:(?:\/\/)?/, ''));
  if (dialect === 'postgres') return openPostgres(connection);
  return openMysql(connection.replace(/^mariadb:/, 'mysql:'));
}

/**
 * A table, schema or column the database does not have: the source's table, key, columns, where
 * or query name it wrongly (or it is not created yet). No run again fixes that, so it is the
 * operator's to fix (exit 2), not a failed run to resume. PostgreSQL undefined_table,
 * undefined_column, invalid_schema_name; MySQL ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR; SQLite's
 * SQLITE_ERROR says it only in words.
 */
function missingName(dialect: SqlDialect, error: unknown): UsageError | undefined {
  const { code, errno, message } = (error ?? {}) as { code?: unknown; errno?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  const missing =
    dialect === 'postgres'
      ? code === '42P01' || code === '42703' || code === '3F000'
      : dialect === 'mysql'
        ? errno === 1146 || errno === 1054
        : /^no such (?:table|column):/.test(text);
  if (!missing) return undefined;
  // SQLite adds a guess about quotes to a missing column: not ours to pass on.
  const what = text.split('\n')[0]?.replace(/ - should this be a string literal in single-quotes\?$/, '');
  return new UsageError(`SQL source: ${what}; give the table, key and columns the source database has (sqlTable's table, key, columns, where or query)`, {
    cause: error,
  });
}

/*
 * One statement per read, always: `where` and `query` are the caller's SQL, and a filter such as
 * `1=1); DROP TABLE t; SELECT (1` must fail, not run three statements. Each database is asked in
 * the form that takes exactly one: PostgreSQL's extended protocol (a parse message holds one
 * statement; pg uses the simple protocol, which runs several, when there are no values unless told
 * otherwise), MySQL's prepared statements (`execute`, whatever `multipleStatements` says), and
 * SQLite's prepare, which compiles the first statement and silently drops the rest: refused here.
 */
function pgAll(client: PgQuerier): SqlReader['all'] {
  return async (sql, params) => (await client.query({ text: sql, values: [...params], queryMode: 'extended' })).rows;
}

function mysqlAll(client: MysqlQuerier): SqlReader['all'] {
  return async (sql, params) => (await client.execute(sql, [...params]))[0] as Record<string, unknown>[];
}

function sqliteAll(db: Pick<DatabaseSync, 'prepare'>): SqlReader['all'] {
  return async (sql, params) => {
    const statement = db.prepare(sql);
    // sourceSQL is the statement SQLite compiled: shorter than the text when more statements follow.
    const compiled: unknown = statement.sourceSQL;
    if (typeof compiled === 'string' && compiled.trim().replace(/;$/, '') !== sql.trim()) {
      throw new UsageError('a SQL source runs one statement: its where or query holds more than one (a ; ends a statement)');
    }
    try {
      return statement.all(...(params as never[])) as Record<string, unknown>[];
    } catch (error) {
      // An INTEGER beyond 2^53 (a 64-bit id) cannot be a number: read the page again as BigInts,
      // and hand such a value over as its exact text, as PostgreSQL's bigint comes.
      if (!(error instanceof RangeError)) throw error;
      statement.setReadBigInts(true);
      return (statement.all(...(params as never[])) as Record<string, unknown>[]).map(exactIntegers);
    }
  };
}

/** A row's BigInts as numbers where a number holds them exactly, else as their decimal text. */
function exactIntegers(row: Record<string, unknown>): Record<string, unknown> {
  for (const column of Object.keys(row)) {
    const value = row[column];
    if (typeof value === 'bigint') {
      row[column] = value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
    }
  }
  return row;
}

function borrowedReader(connection: Exclude<SqlConnection, string>): SqlReader {
  const close = async () => undefined;
  if ('sqlite' in connection) return { dialect: 'sqlite', close, all: sqliteAll(connection.sqlite) };
  if ('postgres' in connection) return { dialect: 'postgres', close, all: pgAll(connection.postgres) };
  return { dialect: 'mysql', close, all: mysqlAll(connection.mysql) };
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
    all: sqliteAll(db),
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
    all: pgAll(client),
    close: () => client.end().catch(() => undefined),
  };
}

interface MysqlConnection extends MysqlQuerier {
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
}

/** What the source sets on a connection it opens from a URL; the URL's own options come first. */
interface MysqlSourceConfig {
  uri: string;
  dateStrings?: boolean;
  supportBigNumbers?: boolean;
  timezone?: string;
}

/**
 * A `mysql://` URL's connection settings. DATETIME, DATE and TIMESTAMP values come back as the
 * server's text (`dateStrings`), so no process time zone shifts a row being copied; a URL may
 * still ask for `Date` objects (`?dateStrings=false`). A BIGINT or DECIMAL a number cannot hold
 * exactly comes as its text (`supportBigNumbers`). `?timezone=+02:00` (or `Z`) sets the time
 * zone of the session too, so TIMESTAMP columns are rendered in it, and mysql2 reads dates in it.
 * `multipleStatements` is dropped: reads are prepared statements, one each, in any case.
 */
function mysqlSourceConfig(url: string): MysqlSourceConfig & { sessionTimeZone?: string } {
  const parsed = new URL(url);
  parsed.searchParams.delete('multipleStatements');
  const config: MysqlSourceConfig & { sessionTimeZone?: string } = { uri: parsed.href };
  if (!parsed.searchParams.has('dateStrings')) config.dateStrings = true;
  // A BIGINT beyond 2^53 (a 64-bit id) as its exact text, not a number rounded to another row's key.
  if (!parsed.searchParams.has('supportBigNumbers')) config.supportBigNumbers = true;
  const zone = parsed.searchParams.get('timezone');
  if (zone !== null && zone !== 'local') {
    const offset = zone === 'Z' ? '+00:00' : zone;
    if (!/^[+-]\d{2}:\d{2}$/.test(offset)) throw new UsageError(`a mysql:// source's timezone must be Z, local or ±HH:MM (got ${JSON.stringify(zone)})`);
    config.sessionTimeZone = offset;
  }
  return config;
}

async function openMysql(url: string): Promise<SqlReader> {
  const specifier = 'mysql2/promise';
  type Mysql = { createConnection(config: MysqlSourceConfig): Promise<MysqlConnection> };
  const module = await importDriver<Mysql & { default?: Mysql }>(specifier, 'a mysql:// source needs the mysql2 package: npm install mysql2');
  const { sessionTimeZone, ...config } = mysqlSourceConfig(url);
  // mysql2 is CommonJS: its functions sit on the default export, and on the module when Node can see them.
  const connection = await (module.default ?? module).createConnection(config);
  try {
    if (sessionTimeZone !== undefined) await connection.query(`SET time_zone = '${sessionTimeZone}'`);
  } catch (error) {
    await connection.end().catch(() => undefined);
    throw error;
  }
  return {
    dialect: 'mysql',
    all: mysqlAll(connection),
    close: () => connection.end().catch(() => undefined),
  };
}
