import type { StoreParts } from '../composed-store.ts';
import { SqlGuards } from './guards.ts';
import type { PooledDriver } from './pooled-driver.ts';
import { SqlCheckpoints } from './sql-checkpoints.ts';
import { SqlDeadLetters } from './sql-dead-letters.ts';
import type { SqlBackend } from './sql-driver.ts';
import { SqlHistory } from './sql-history.ts';
import { SqlInstances } from './sql-instances.ts';
import { SqlJournal } from './sql-journal.ts';
import { SqlLeases } from './sql-leases.ts';
import { SqlPlans, SqlRateBuckets } from './sql-plans.ts';

/**
 * A SQL server store's concerns: the flows written once here over the backend's driver, and
 * what the backend does its own way (migrations, job transactions, the chain's appends, the
 * effect journal's statements, waking idle workers).
 */
export function sqlStoreParts<Pool extends { end(): Promise<void> }>(driver: PooledDriver<Pool>, backend: SqlBackend<Pool>): StoreParts {
  const instances = new SqlInstances(driver);
  const leases = new SqlLeases(driver, backend.changes);
  return {
    lifecycle: {
      migrate: async () => {
        await backend.migrate();
        await driver.syncClock();
      },
      close: () => driver.close(),
    },
    instances,
    leases,
    checkpoints: new SqlCheckpoints(driver, async (lease) => {
      await driver.pool();
      return new backend.Tx(lease, driver.pool, driver.location);
    }),
    journal: new SqlJournal(driver, backend),
    deadLetters: new SqlDeadLetters(driver),
    history: new SqlHistory(driver, (instanceId, generation, events) => backend.appendChained(instanceId, generation, events), instances, leases),
    plans: new SqlPlans(driver),
    rateBuckets: new SqlRateBuckets(driver),
    guards: new SqlGuards(driver, backend),
  };
}
