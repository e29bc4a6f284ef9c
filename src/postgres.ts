/**
 * 'checkpointed/postgres': the PostgreSQL store class and the slice of `pg` it uses, for
 * programs that pass their own pool. The `pg` package is loaded only when the store first
 * connects, and only if no pool was given.
 *
 * @module checkpointed/postgres
 */
export type { PgPool, PgPoolClient, PgQueryable, PgResult, PostgresStoreOptions } from './store/postgres/index.ts';
export { DEFAULT_PG_SCHEMA, PostgresStore } from './store/postgres/index.ts';
