import { Dialect, errorCode } from '../sql/dialect.ts';
import { isTransientStoreError } from '../transient.ts';

/** PostgreSQL's words where they are not the standard's: numbered parameters, its clock, its lock-timeout code. */
class PostgresDialect extends Dialect {
  override readonly name = 'postgres';
  override readonly title = 'PostgreSQL';
  override readonly numberedParameters = true;
  override readonly databaseClock = true;
  override readonly maxBatchRows = 1000;
  override readonly now = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

  override placeholder(n: number): string {
    return `$${n}`;
  }

  /** LOCAL: ends with the transaction, so a pooled connection goes back as it came. */
  override idleLimit(ms: number): string {
    return `SELECT set_config('idle_in_transaction_session_timeout', '${Math.max(0, Math.floor(ms))}', true)`;
  }

  override isTransient(error: unknown): boolean {
    return isTransientStoreError(error);
  }

  /** lock_not_available: `lock_timeout` passed. */
  override isLockTimeout(error: unknown): boolean {
    return errorCode(error) === '55P03';
  }
}

export const postgresDialect = new PostgresDialect();
