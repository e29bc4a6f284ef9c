/**
 * 'checkpointed/sqlite': the SQLite store class and its options, for programs that construct
 * their store themselves (openStore('sqlite:PATH') does the same from a URL). The same set as
 * every backend's path: the store class and its options (SQLite has no pool to take).
 *
 * @module checkpointed/sqlite
 */
export type { SqliteStoreOptions } from './store/sqlite/index.ts';
export { SqliteStore } from './store/sqlite/index.ts';
