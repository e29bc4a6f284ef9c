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
  MysqlStoreOptions,
  MysqlUrlParts,
} from './store/mysql/index.ts';
export { DEFAULT_MYSQL_PREFIX, MysqlStore, parseMysqlUrl } from './store/mysql/index.ts';
export type { Row } from './store/rows.ts';
