import { ComposedStore } from '../composed-store.ts';
import { SqlGuards } from '../sql/guards.ts';
import { PostgresCheckpoints } from './postgres-checkpoints.ts';
import { PostgresDeadLetters } from './postgres-dead-letters.ts';
import { PostgresDriver, type PostgresStoreOptions } from './postgres-driver.ts';
import { postgresGuardDialect } from './postgres-guards.ts';
import { PostgresHistory } from './postgres-history.ts';
import { PostgresInstances } from './postgres-instances.ts';
import { PostgresJournal } from './postgres-journal.ts';
import { PostgresLeases } from './postgres-leases.ts';
import { migratePostgres } from './postgres-migrations.ts';

export { DEFAULT_PG_SCHEMA, type PostgresStoreOptions } from './postgres-driver.ts';

/**
 * The store for many workers on many machines. PostgreSQL is the coordinator: a claim takes a
 * free or expired shard with `FOR UPDATE SKIP LOCKED` and bumps its fencing token; a commit locks
 * the shard row and compares tokens inside the same transaction as the checkpoint and the job's
 * `ctx.tx` writes. Tables are schema-qualified, so the job's own `ctx.tx` SQL keeps the
 * connection's default search_path. Each concern is its own `postgres-<concern>.ts` class over
 * one shared PostgresDriver; ComposedStore makes them one Store and guards close.
 */
export class PostgresStore extends ComposedStore {
  constructor(options: PostgresStoreOptions) {
    const driver = new PostgresDriver(options);
    const instances = new PostgresInstances(driver);
    const leases = new PostgresLeases(driver);
    super(driver.location, {
      lifecycle: {
        migrate: async () => {
          await migratePostgres(driver);
          await driver.syncClock();
        },
        close: () => driver.close(),
      },
      instances,
      leases,
      checkpoints: new PostgresCheckpoints(driver),
      journal: new PostgresJournal(driver),
      deadLetters: new PostgresDeadLetters(driver),
      history: new PostgresHistory(driver, instances, leases),
      guards: new SqlGuards(postgresGuardDialect(driver)),
    });
  }
}
