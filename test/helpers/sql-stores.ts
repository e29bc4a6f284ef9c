// The SQL stores a test runs on, as one list to loop over (kysely's `DIALECTS`): SQLite always,
// PostgreSQL and MySQL/MariaDB when a server answers, each skipped with one line saying why
// otherwise. A test that runs on more than one store is written once:
//
//   for (const store of sqlStores) {
//     test(`… on ${store.title}`, { skip: await store.skip() }, async () => {
//       const database = await store.database();
//       … perStore(store.name, { sqlite: 100_000, postgres: 20_000, mysql: 20_000 }) …
//     });
//   }
//
// A test that stops its store's server loops over `restartableStores` instead: each starts a
// server of its own rather than stopping the one every test file shares.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { freshMysqlDatabase, mysqlRows, mysqlSkip, startThrowawayMariadb } from './mysql.ts';
import { freshDatabase, sharedPostgresUrl, startEmbeddedPostgres, withPool } from './postgres.ts';
import { mysqlProbe, postgresProbe, type ShardStoreProbe, sqliteProbe } from './shard-output.ts';

export type SqlStoreName = 'sqlite' | 'postgres' | 'mysql';

/** One fresh, empty database of a store, made for one test. */
export interface TestDatabase {
  /**
   * The `--store` value. `namespace` puts the store's tables in a schema (PostgreSQL, `?schema=`)
   * or behind a table prefix (MySQL, `?prefix=`); SQLite has one file per store and ignores it.
   */
  store(namespace?: string): string;
  /** A store table's name as SQL beside the store writes it (`runs` → `ckpt.runs`, `ckpt_runs`). */
  table(name: string, namespace?: string): string;
  /** The rows of one statement run beside the store, on a connection of its own. */
  rows(sql: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
  /** The fixture shard-job's `out` table and run history, read from outside the workers. */
  probe(namespace?: string): ShardStoreProbe;
  drop(): Promise<void>;
}

export interface SqlStore {
  name: SqlStoreName;
  /** The store's name in a test title. */
  title: string;
  /** Why this store cannot be tested here (one line), else false: for `test(…, { skip })`. */
  skip(): Promise<string | false>;
  /** A fresh database on the server every test file shares (SQLite: a new file). */
  database(): Promise<TestDatabase>;
}

/** `sql` with `"name"` quoted as the store quotes identifiers (MySQL: backticks). */
export function quoteFor(name: SqlStoreName, sql: string): string {
  return name === 'mysql' ? sql.replaceAll('"', '`') : sql;
}

/** The value for this store, written once per store (kysely's `testSql(…, { postgres, mysql, sqlite })`). */
export function perStore<T>(name: SqlStoreName, values: Record<SqlStoreName, T>): T {
  return values[name];
}

function sqliteDatabase(): TestDatabase {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-sqlite-'));
  const path = join(dir, 'store.db');
  return {
    store: () => `sqlite:${path}`,
    table: (name) => name,
    async rows(sql, values = []) {
      const db = new DatabaseSync(path);
      try {
        db.exec('PRAGMA busy_timeout = 10000');
        const statement = db.prepare(sql);
        if (statement.columns().length > 0) return statement.all(...(values as never[])) as Record<string, unknown>[];
        statement.run(...(values as never[]));
        return [];
      } finally {
        db.close();
      }
    },
    probe: () => sqliteProbe(path),
    async drop() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresDatabase(url: string, drop: () => Promise<void>): TestDatabase {
  return {
    store: (namespace) => (namespace === undefined ? url : `${url}?schema=${namespace}`),
    table: (name, namespace) => (namespace === undefined ? name : `${namespace}.${name}`),
    rows: (sql, values) => withPool(url, async (pool) => (await pool.query(sql, values)).rows as Record<string, unknown>[]),
    probe: (namespace = 'ckpt') => postgresProbe(url, namespace),
    drop,
  };
}

function mysqlDatabase(url: string, drop: () => Promise<void>): TestDatabase {
  return {
    store: (namespace) => (namespace === undefined ? url : `${url}?prefix=${namespace}`),
    table: (name, namespace) => `${namespace ?? 'ckpt_'}${name}`,
    rows: (sql, values) => mysqlRows(url, quoteFor('mysql', sql), values),
    probe: (namespace = 'ckpt_') => mysqlProbe(url, namespace),
    drop,
  };
}

async function postgresSkip(): Promise<string | false> {
  let url: string;
  try {
    url = sharedPostgresUrl();
  } catch (error) {
    return (error as Error).message;
  }
  return withPool(url, (pool) => pool.query('SELECT 1')).then(
    () => false,
    (error: Error) => `no PostgreSQL for the tests: ${new URL(url).host} did not answer (${error.message})`,
  );
}

const postgresSkipOnce = (() => {
  let answer: Promise<string | false> | undefined;
  return () => {
    answer ??= postgresSkip();
    return answer;
  };
})();

export const sqlStores: SqlStore[] = [
  {
    name: 'sqlite',
    title: 'SQLite',
    skip: async () => false,
    database: async () => sqliteDatabase(),
  },
  {
    name: 'postgres',
    title: 'PostgreSQL',
    skip: postgresSkipOnce,
    async database() {
      const created = await freshDatabase();
      return postgresDatabase(created.url, created.drop);
    },
  },
  {
    name: 'mysql',
    title: 'MySQL',
    skip: mysqlSkip,
    async database() {
      const created = await freshMysqlDatabase();
      return mysqlDatabase(created.url, created.drop);
    },
  },
];

/** A server a test may stop and start: its own, never the one the other test files share. */
export interface OwnServer {
  /** The server's one database, as a store on it. */
  database: TestDatabase;
  /** Clean shutdown: clients are disconnected, data stays. */
  stop(): Promise<void>;
  /** Start again on the same port and data. */
  start(): Promise<void>;
  /** Stop and delete its data. */
  destroy(): Promise<void>;
}

export interface RestartableStore {
  name: Exclude<SqlStoreName, 'sqlite'>;
  title: string;
  skip(): Promise<string | false>;
  startServer(): Promise<OwnServer>;
}

const MARIADBD = process.env.CKPT_TEST_MARIADBD ?? '/usr/sbin/mariadbd';

/** The stores with a server to stop: PostgreSQL (embedded) and MariaDB (a throwaway mariadbd). */
export const restartableStores: RestartableStore[] = [
  {
    name: 'postgres',
    title: 'PostgreSQL',
    skip: async () => false,
    async startServer() {
      const server = await startEmbeddedPostgres();
      return { ...server, database: postgresDatabase(server.url, async () => undefined) };
    },
  },
  {
    name: 'mysql',
    title: 'MariaDB',
    skip: async () => (existsSync(MARIADBD) ? false : `no ${MARIADBD} to start (and stop) a throwaway MariaDB with`),
    async startServer() {
      const server = await startThrowawayMariadb();
      return { ...server, database: mysqlDatabase(server.url, async () => undefined) };
    },
  },
];
