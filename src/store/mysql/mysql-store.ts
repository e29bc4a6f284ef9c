import { ComposedStore } from '../composed-store.ts';
import { pollForChanges, type SqlBackend } from '../sql/sql-driver.ts';
import { sqlStoreParts } from '../sql/sql-store.ts';
import { MysqlDriver, type MysqlPool, type MysqlStoreOptions } from './mysql-driver.ts';
import { appendChained } from './mysql-history.ts';
import { effectKey, mysqlJournal } from './mysql-journal.ts';
import { migrateMysql } from './mysql-migrations.ts';
import { MysqlTx } from './mysql-tx.ts';

export { DEFAULT_MYSQL_PREFIX, type MysqlStoreOptions } from './mysql-driver.ts';

/**
 * The store for many workers on MySQL ≥ 8.0 or MariaDB ≥ 10.6, with PostgreSQL's semantics: a
 * claim takes a free or expired shard with `FOR UPDATE SKIP LOCKED` and bumps its fencing token;
 * a commit locks the shard row and compares tokens inside the same transaction as the checkpoint
 * and the job's `ctx.tx` writes. Tables live in the URL's database, their names prefixed
 * (`ckpt_` by default), so the job's `ctx.tx` SQL shares the database without meeting them. The
 * flows are the shared ones (src/store/sql/); this folder keeps what is MySQL's own: its driver,
 * dialect and error codes, its job transaction, its migrations, the event chain's append, the
 * effect journal's statements. Idle workers poll (no notifications).
 */
export class MysqlStore extends ComposedStore {
  constructor(options: MysqlStoreOptions) {
    const driver = new MysqlDriver(options);
    super(driver.location, sqlStoreParts(driver, mysqlOwn(driver)));
  }
}

/** What MySQL does its own way beside the shared flows; idle workers poll (no notifications). */
function mysqlOwn(driver: MysqlDriver): SqlBackend<MysqlPool> {
  const append: SqlBackend<MysqlPool>['appendChained'] = (instanceId, generation, events) =>
    driver.transaction((on) => appendChained(driver, on, instanceId, generation, events));
  return {
    migrate: () => migrateMysql(driver),
    Tx: MysqlTx,
    journal: mysqlJournal(driver),
    effectKey,
    changes: pollForChanges,
    appendChained: append,
    appendChainedOn: (on, instanceId, generation, events) => appendChained(driver, on, instanceId, generation, events),
  };
}
