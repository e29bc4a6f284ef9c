import { Dialect, errorCode } from '../sql/dialect.ts';
import { isTransientStoreError } from '../transient.ts';

/**
 * Errors that say "the server is not reachable right now", or "the transaction was rolled back
 * whole, try again" (a deadlock; a lock wait past innodb_lock_wait_timeout, whose holder is a
 * frozen session the server will end): retrying the same call later can succeed.
 */
const transientCodes = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_SERVER_SHUTDOWN', // 1053
  'ER_CONNECTION_KILLED', // MariaDB 1927
  'ER_CLIENT_INTERACTION_TIMEOUT', // MySQL 4031: the server closed an idle session
  'ER_CON_COUNT_ERROR', // too many connections
  'ER_LOCK_DEADLOCK', // 1213
  'ER_LOCK_WAIT_TIMEOUT', // 1205
  'ER_QUERY_INTERRUPTED', // 1317: the statement was killed (a shutdown in progress)
  'ER_UNKNOWN_COM_ERROR', // 1047: a Galera node not ready for clients yet
]);

const transientMessages = /closed state|Connection lost|Pool is closed/i;

/**
 * MySQL's and MariaDB's words where they are not the standard's: backquotes, `ON DUPLICATE KEY
 * UPDATE`, `LOCK IN SHARE MODE`, `<=>`, `UPDATE … JOIN`, no RETURNING, no transactional DDL, a row-value comparison
 * no index serves, its clock, its error codes.
 */
class MysqlDialect extends Dialect {
  override readonly name = 'mysql';
  override readonly title = 'MySQL';
  override readonly rowValueSeek = false;
  override readonly returning = false;
  override readonly transactionalDdl = false;
  override readonly databaseClock = true;
  override readonly quoteCharacter = '`';
  override readonly maxBatchRows = 1000;
  /** MariaDB has no `FOR SHARE`; both take this. */
  override readonly shareLock = 'LOCK IN SHARE MODE';
  /**
   * Arithmetic on UTC_TIMESTAMP, not UNIX_TIMESTAMP(NOW()), so the session's time zone (and its
   * DST hour) cannot shift it.
   */
  override readonly now = `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)`;

  /** MySQL always updates (it uses whichever unique key conflicts): a no-op assignment is its "do nothing". */
  override onConflict(_key: readonly string[], update: readonly string[], noop?: string): string {
    const first = noop ?? 'id';
    const set = update.length === 0 ? `${first} = ${first}` : update.map((column) => `${column} = VALUES(${column})`).join(', ');
    return ` ON DUPLICATE KEY UPDATE ${set}`;
  }

  override onConflictAdd(_key: readonly string[], _table: string, column: string): string {
    return ` ON DUPLICATE KEY UPDATE ${column} = ${column} + VALUES(${column})`;
  }

  override distinct(a: string, b: string): string {
    return `NOT (${a} <=> ${b})`;
  }

  override updateJoin(target: string, join: string, on: string, set: string, where: string): string {
    return `UPDATE ${target} JOIN ${join} ON ${on} SET ${set} WHERE ${where}`;
  }

  /**
   * The session's idle wait, in whole seconds (at least 1): the server closes a connection that
   * sends nothing for that long and rolls its transaction back, freeing its row locks.
   * `wait_timeout` is the one setting MySQL 8 and MariaDB share for this (MariaDB's
   * `idle_transaction_timeout` has no MySQL twin), so one tested path serves both; it applies out
   * of a transaction too, so every user puts it back (mysql-driver.ts RESTORE_WAIT).
   */
  override idleLimit(ms: number): string {
    return `SET SESSION wait_timeout = ${Math.max(1, Math.ceil(ms / 1000))}`;
  }

  override isTransient(error: unknown): boolean {
    if (isTransientStoreError(error)) return true;
    if (error === null || typeof error !== 'object') return false;
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && transientCodes.has(code)) return true;
    return typeof message === 'string' && transientMessages.test(message);
  }

  /** mysql2 marks the errors that left the connection unusable `fatal`. */
  override isFatal(error: unknown): boolean {
    return error !== null && typeof error === 'object' && (error as { fatal?: unknown }).fatal === true;
  }

  override isLockTimeout(error: unknown): boolean {
    return errorCode(error) === 'ER_LOCK_WAIT_TIMEOUT';
  }
}

export const mysqlDialect = new MysqlDialect();
