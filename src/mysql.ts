/**
 * 'checkpointed/mysql': the MySQL/MariaDB store class, its options and the slice of a
 * `mysql2/promise` pool it takes, for programs that build their store themselves (a ready pool,
 * a table prefix); `openStore('mysql://…')` reaches the same class by itself. The same set as
 * every backend's path: the store class, its options, and the pool they may take.
 *
 * @module checkpointed/mysql
 */
export type { MysqlPool, MysqlStoreOptions } from './store/mysql/index.ts';
export { MysqlStore } from './store/mysql/index.ts';
