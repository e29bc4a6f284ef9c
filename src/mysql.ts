/**
 * `checkpointed/mysql`: the MySQL/MariaDB store for programs that build it themselves (a ready
 * mysql2 pool, a table prefix). `openStore('mysql://…')` reaches the same class by itself.
 *
 * @module checkpointed/mysql
 */
export type {
  MysqlConnection,
  MysqlCoreConnection,
  MysqlPool,
  MysqlQueryable,
  MysqlRawResult,
  MysqlResult,
  MysqlUrlParts,
} from './store/mysql/mysql-driver.ts';
export { DEFAULT_MYSQL_PREFIX, parseMysqlUrl } from './store/mysql/mysql-driver.ts';
export type { MysqlStoreOptions } from './store/mysql/mysql-store.ts';
export { MysqlStore } from './store/mysql/mysql-store.ts';
export type { Row } from './store/rows.ts';
