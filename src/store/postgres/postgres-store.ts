import { ComposedStore } from '../composed-store.ts';
import type { SqlBackend } from '../sql/sql-driver.ts';
import { sqlStoreParts } from '../sql/sql-store.ts';
import { type PgPool, PostgresDriver, type PostgresStoreOptions } from './postgres-driver.ts';
import { appendChained, appendChainedOn } from './postgres-history.ts';
import { effectKey, postgresJournal } from './postgres-journal.ts';
import { migratePostgres } from './postgres-migrations.ts';
import { PostgresTx } from './postgres-tx.ts';
import { PostgresWakeups } from './postgres-wakeups.ts';

export { DEFAULT_PG_SCHEMA, type PostgresStoreOptions } from './postgres-driver.ts';

/**
 * The store for many workers on many machines. PostgreSQL is the coordinator: a claim takes a
 * free or expired shard with `FOR UPDATE SKIP LOCKED` and bumps its fencing token; a commit locks
 * the shard row and compares tokens inside the same transaction as the checkpoint and the job's
 * `ctx.tx` writes. Tables are schema-qualified, so the job's own `ctx.tx` SQL keeps the
 * connection's default search_path. The flows are the shared ones (src/store/sql/); this folder
 * keeps what is PostgreSQL's own: its driver and dialect, its job transaction, its migrations,
 * the event chain's one-statement append, the effect journal's statements, and LISTEN/NOTIFY wakeups.
 */
export class PostgresStore extends ComposedStore {
  constructor(options: PostgresStoreOptions) {
    const driver = new PostgresDriver(options);
    super(driver.location, sqlStoreParts(driver, postgresOwn(driver)));
  }
}

/** What PostgreSQL does its own way beside the shared flows. */
function postgresOwn(driver: PostgresDriver): SqlBackend<PgPool> {
  return {
    migrate: () => migratePostgres(driver),
    Tx: PostgresTx,
    journal: postgresJournal(driver),
    effectKey,
    changes: new PostgresWakeups(driver),
    appendChained: appendChained.bind(null, driver),
    appendChainedOn: appendChainedOn.bind(null, driver),
  };
}
