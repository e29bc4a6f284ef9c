import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MysqlStore } from '../../src/mysql.ts';
import { PostgresStore } from '../../src/postgres.ts';
import { SqliteStore } from '../../src/sqlite.ts';
import type { Store } from '../../src/store.ts';
import { MemoryStore } from './memory-store.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './mysql.ts';
import { freshDatabase } from './postgres.ts';

/** One backend under test: how to make a fresh, migrated store, and its SQL dialect (if any). */
export interface StoreFactory {
  name: string;
  /**
   * A fresh empty store; `dispose` removes whatever it left behind. `exec` runs SQL beside the
   * store, outside any transaction: for DDL where it would end the job's transaction (MySQL).
   */
  create(): Promise<{ store: Store; dispose(): Promise<void>; exec?: (sql: string) => Promise<void> }>;
  /** `$n` placeholder of the backend's SQL, or undefined when it has no SQL (memory). */
  param?: (n: number) => string;
  /** Why this backend cannot be tested here (no server), else false. */
  skip?: () => Promise<string | false>;
}

export const storeFactories: StoreFactory[] = [
  {
    name: 'sqlite',
    param: () => '?',
    async create() {
      const dir = mkdtempSync(join(tmpdir(), 'ckpt-contract-'));
      const store = new SqliteStore(join(dir, 'store.db'));
      await store.migrate();
      return {
        store,
        async dispose() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'memory',
    async create() {
      const store = new MemoryStore();
      await store.migrate();
      return { store, dispose: () => store.close() };
    },
  },
  {
    name: 'postgres',
    param: (n) => `$${n}`,
    async create() {
      const database = await freshDatabase();
      // A non-default schema, so the contract also covers ?schema= (tables are schema-qualified).
      const store = new PostgresStore({ connectionString: database.url, schema: 'ckpt_contract' });
      await store.migrate();
      return {
        store,
        async dispose() {
          await store.close();
          await database.drop();
        },
      };
    },
  },
  {
    name: 'mysql',
    param: () => '?',
    skip: mysqlSkip,
    async create() {
      const database = await freshMysqlDatabase();
      // A non-default prefix, so the contract also covers ?prefix= (every table name carries it).
      const store = new MysqlStore({ url: database.url, prefix: 'contract_', database: database.name });
      await store.migrate();
      return {
        store,
        exec: (sql) => mysqlRows(database.url, sql).then(() => undefined),
        async dispose() {
          await store.close();
          await database.drop();
        },
      };
    },
  },
];

/** Backends chosen with CKPT_TEST_STORES=sqlite,memory,… (default: all known). */
export function selectedStoreFactories(): StoreFactory[] {
  const wanted = process.env.CKPT_TEST_STORES?.split(',').map((name) => name.trim());
  return wanted ? storeFactories.filter((factory) => wanted.includes(factory.name)) : storeFactories;
}
