import { ComposedStore } from '../composed-store.ts';
import { SqliteCheckpoints } from './sqlite-checkpoints.ts';
import { SqliteDeadLetters } from './sqlite-dead-letters.ts';
import { SqliteDriver, type SqliteStoreOptions } from './sqlite-driver.ts';
import { SqliteGuards } from './sqlite-guards.ts';
import { SqliteHistory } from './sqlite-history.ts';
import { SqliteInstances } from './sqlite-instances.ts';
import { SqliteJournal } from './sqlite-journal.ts';
import { registerSqliteKeyRecord } from './sqlite-key-record.ts';
import { SqliteLeases } from './sqlite-leases.ts';
import { migrateSqlite, migrateSqliteSide, refuseMissingInstances } from './sqlite-migrations.ts';
import { SqlitePlans, SqliteRateBuckets } from './sqlite-plans.ts';

export type { SqliteStoreOptions } from './sqlite-driver.ts';

/**
 * The embedded default store: one SQLite file in WAL mode, written with synchronous=FULL so a
 * committed checkpoint survives power loss; the effect journal in a second file beside it.
 * The transaction a job writes into through `ctx.tx` is opened on its first use and holds the
 * file's one write lock until the checkpoint commits; other processes on the same file wait.
 * Each concern is its own `sqlite-<concern>.ts` class over one shared SqliteDriver;
 * ComposedStore makes them one Store and guards close.
 */
export class SqliteStore extends ComposedStore {
  constructor(path: string, options: SqliteStoreOptions = {}) {
    const driver = new SqliteDriver(path, options, migrateSqliteSide);
    // The runner's key for `<store>.key` is checked against what this store recorded of it.
    driver.onClose.push(registerSqliteKeyRecord(driver));
    const instances = new SqliteInstances(driver);
    const leases = new SqliteLeases(driver);
    super(driver.location, {
      lifecycle: {
        // The side file too: a run writes its events there from its first step, and a side file
        // from a newer checkpointed is refused at open, like a newer store; and a side file
        // that knows instances the main file lost is refused (the store-identity rule).
        migrate: async () => {
          await migrateSqlite(driver);
          driver.openSide();
          refuseMissingInstances(driver);
        },
        close: async () => driver.close(),
      },
      instances,
      leases,
      checkpoints: new SqliteCheckpoints(driver),
      journal: new SqliteJournal(driver),
      deadLetters: new SqliteDeadLetters(driver),
      history: new SqliteHistory(driver, instances, leases),
      guards: new SqliteGuards(driver),
      plans: new SqlitePlans(driver),
      rateBuckets: new SqliteRateBuckets(driver),
    });
  }
}
