/**
 * The MySQL/MariaDB backend's face: what the rest of checkpointed and `checkpointed/mysql` take
 * from this folder. The store's flows are the shared ones (src/store/sql/); this folder keeps what
 * is MySQL's own: its driver (the slice of `mysql2` it uses, the `?prefix=` URL), its dialect and
 * error codes, its job transaction, its numbered migrations, the event chain's append and the
 * effect journal's statements.
 */
export {
  createMysqlPool,
  DEFAULT_MYSQL_PREFIX,
  type MysqlConnection,
  type MysqlCoreConnection,
  type MysqlPool,
  type MysqlQueryable,
  type MysqlRawResult,
  type MysqlResult,
  type MysqlUrlParts,
  parseMysqlUrl,
} from './mysql-driver.ts';
export { MysqlStore, type MysqlStoreOptions } from './mysql-store.ts';
