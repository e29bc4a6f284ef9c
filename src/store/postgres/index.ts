/**
 * The PostgreSQL backend's face: what the rest of checkpointed and `checkpointed/postgres` take
 * from this folder. The store's flows are the shared ones (src/store/sql/); this folder keeps what
 * is PostgreSQL's own: its driver (the slice of `pg` it uses) and dialect, its job transaction,
 * its numbered migrations, the event chain's one-statement append, the effect journal's statements,
 * and LISTEN/NOTIFY wakeups.
 */
export { createPgPool, type PgPool, type PgPoolClient, type PgQueryable, type PgResult } from './postgres-driver.ts';
export { DEFAULT_PG_SCHEMA, PostgresStore, type PostgresStoreOptions } from './postgres-store.ts';
