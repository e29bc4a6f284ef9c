/**
 * 'checkpointed/postgres': the PostgreSQL store class, its options and the slice of a `pg` pool
 * it takes, for programs that build their store themselves (`openStore('postgres://…')` does the
 * same from a URL). The `pg` package is loaded only when the store first connects, and only if
 * no pool was given. The same set as every backend's path: the store class, its options, and
 * the pool they may take.
 *
 * @module checkpointed/postgres
 */
export type { PgPool, PostgresStoreOptions } from './store/postgres/index.ts';
export { PostgresStore } from './store/postgres/index.ts';
