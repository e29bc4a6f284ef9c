/**
 * 'checkpointed/sqlite': the SQLite store class, for programs that construct their store
 * themselves (openStore('sqlite:PATH') does the same from a URL).
 *
 * @module checkpointed/sqlite
 */
export type { SqliteStoreOptions } from './store/sqlite/index.ts';
export { SqliteStore } from './store/sqlite/index.ts';
