import { ComposedStore } from '../composed-store.ts';
import { SqlGuards } from '../sql/guards.ts';
import { MysqlCheckpoints } from './mysql-checkpoints.ts';
import { MysqlDeadLetters } from './mysql-dead-letters.ts';
import { MysqlDriver, type MysqlStoreOptions } from './mysql-driver.ts';
import { mysqlGuardDialect } from './mysql-guards.ts';
import { MysqlHistory } from './mysql-history.ts';
import { MysqlInstances } from './mysql-instances.ts';
import { MysqlJournal } from './mysql-journal.ts';
import { MysqlLeases } from './mysql-leases.ts';
import { migrateMysql } from './mysql-migrations.ts';

export { DEFAULT_MYSQL_PREFIX, type MysqlStoreOptions } from './mysql-driver.ts';

/**
 * The store for many workers on MySQL ≥ 8.0 or MariaDB ≥ 10.6, with PostgreSQL's semantics: a
 * claim takes a free or expired shard with `FOR UPDATE SKIP LOCKED` and bumps its fencing token;
 * a commit locks the shard row and compares tokens inside the same transaction as the checkpoint
 * and the job's `ctx.tx` writes. Tables live in the URL's database, their names prefixed
 * (`ckpt_` by default), so the job's `ctx.tx` SQL shares the database without meeting them. Each
 * concern is its own `mysql-<concern>.ts` class over one shared MysqlDriver; ComposedStore makes
 * them one Store and guards close.
 */
export class MysqlStore extends ComposedStore {
  constructor(options: MysqlStoreOptions) {
    const driver = new MysqlDriver(options);
    const instances = new MysqlInstances(driver);
    const leases = new MysqlLeases(driver);
    super(driver.location, {
      lifecycle: {
        migrate: async () => {
          await migrateMysql(driver);
          await driver.syncClock();
        },
        close: () => driver.close(),
      },
      instances,
      leases,
      checkpoints: new MysqlCheckpoints(driver),
      journal: new MysqlJournal(driver),
      deadLetters: new MysqlDeadLetters(driver),
      history: new MysqlHistory(driver, instances, leases),
      guards: new SqlGuards(mysqlGuardDialect(driver)),
    });
  }
}
