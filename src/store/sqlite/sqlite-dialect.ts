import { Dialect } from '../sql/dialect.ts';
import { isTransientStoreError } from '../transient.ts';

/** SQLite speaks the base dialect: `?`, `"name"`, ON CONFLICT, row values, RETURNING, DDL in a transaction. */
class SqliteDialect extends Dialect {
  /** SQLITE_BUSY and SQLITE_LOCKED: another process holds the file's lock past the busy timeout. */
  override isTransient(error: unknown): boolean {
    return isTransientStoreError(error);
  }
}

export const sqliteDialect = new SqliteDialect();
