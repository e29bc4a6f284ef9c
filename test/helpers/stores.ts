import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../src/index.ts';
import { PostgresStore } from '../../src/postgres.ts';
import { SqliteStore } from '../../src/sqlite.ts';
import { MemoryStore } from './memory-store.ts';
import { freshDatabase } from './postgres.ts';

/** One backend under test: how to make a fresh, migrated store, and its SQL dialect (if any). */
export interface StoreFactory {
  name: string;
  /** A fresh empty store; `dispose` removes whatever it left behind. */
  create(): Promise<{ store: Store; dispose(): Promise<void> }>;
  /** `$n` placeholder of the backend's SQL, or undefined when it has no SQL (memory). */
  param?: (n: number) => string;
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
];

/** Backends chosen with CKPT_TEST_STORES=sqlite,memory,… (default: all known). */
export function selectedStoreFactories(): StoreFactory[] {
  const wanted = process.env.CKPT_TEST_STORES?.split(',').map((name) => name.trim());
  return wanted ? storeFactories.filter((factory) => wanted.includes(factory.name)) : storeFactories;
}
