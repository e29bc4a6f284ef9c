/**
 * What the SQL databases we write for disagree on, in one object per dialect: every statement the
 * stores, `ctx.tx` batches, `ctx.tx.sql` templates and the SQL sources build asks it. The base
 * class speaks standard SQL (SQLite takes it as it is); PostgreSQL and MySQL override the few
 * rules where they differ (`postgres/postgres-dialect.ts`, `mysql/mysql-dialect.ts`), so a rule is
 * written once, where its dialect is.
 *
 * The flags say what a dialect can do, and each is read where a statement would change shape:
 * - `numberedParameters`: placeholders are `$1`, `$2`… (PostgreSQL), not positional `?`;
 * - `rowValueSeek`: an index serves a row-value comparison `(k1, k2) > (?, ?)`; false on MySQL
 *   and MariaDB, which use only an index's first column for one, so a keyset page expands it;
 * - `returning`: INSERT/UPDATE/DELETE … RETURNING exists; the shared store flows do not rely on
 *   it (they read `affectedRows` and `insertId`), only each backend's own fast paths;
 * - `transactionalDdl`: DDL runs inside a transaction and rolls back with it; MySQL commits DDL
 *   by itself (and ends the job's transaction: mysql-tx.ts refuses the rest of it);
 * - `databaseClock`: leases are judged on the database's clock (`now`); false on SQLite, whose
 *   processes share this machine's.
 */
export type SqlDialect = 'sqlite' | 'postgres' | 'mysql';

export class Dialect {
  readonly name: SqlDialect = 'sqlite';
  /** The database's name in messages. */
  readonly title: string = 'SQLite';
  readonly numberedParameters: boolean = false;
  readonly rowValueSeek: boolean = true;
  readonly returning: boolean = true;
  readonly transactionalDdl: boolean = true;
  readonly databaseClock: boolean = false;
  /** The character around an identifier; one inside a name is doubled. */
  readonly quoteCharacter: string = '"';
  /** Rows of one multi-row `ctx.tx` batch statement, at the most (see batch-sql.ts). */
  readonly maxBatchRows: number = 500;
  /**
   * Now on the database's clock in epoch ms, as a SQL expression: every lease is judged by one
   * clock. Undefined where the callers use this machine's (`databaseClock` false).
   */
  readonly now: string | undefined = undefined;
  /**
   * How long a transaction of the store's own may sit idle, its worker frozen, before the server
   * ends the session (freeing its row locks); a job's transaction is bounded by its lease, never less.
   */
  readonly frozenSessionMs: number = 5000;
  /**
   * What ends a `SELECT` that reads, and share-locks, the latest committed row (not a snapshot).
   * SQLite's flows never ask: the file has one write lock, no row locks.
   */
  readonly shareLock: string = 'FOR SHARE';

  /** The `n`th bind parameter of a statement (from 1). */
  placeholder(_n: number): string {
    return '?';
  }

  /**
   * A statement written with `?` in this dialect's placeholders: the store's own SQL is written
   * once with `?`. A `?` inside a quoted string or identifier is left alone.
   */
  parameters(sql: string): string {
    // Already numbered (a backend's own `$n` statement, a migration): left as it is.
    if (!this.numberedParameters || !sql.includes('?') || /\$\d/.test(sql)) return sql;
    let n = 0;
    let out = '';
    let quote: string | undefined;
    for (const char of sql) {
      if (quote !== undefined) {
        if (char === quote) quote = undefined;
      } else if (char === "'" || char === '"') {
        quote = char;
      } else if (char === '?') {
        out += this.placeholder(++n);
        continue;
      }
      out += char;
    }
    return out;
  }

  /** One identifier, quoted. */
  quote(name: string): string {
    const q = this.quoteCharacter;
    return `${q}${name.replaceAll(q, q + q)}${q}`;
  }

  /** A table name, schema-qualified or not ("audit.grants"): each part quoted on its own. */
  quoteTable(name: string): string {
    return name
      .split('.')
      .map((part) => this.quote(part))
      .join('.');
  }

  /**
   * What ends an `INSERT` whose row may exist already (its `key` is taken): `update`, the quoted
   * columns to set from the proposed row, or none to keep the row as it is (`noop`: a column a
   * dialect without "do nothing" may assign to itself).
   */
  onConflict(key: readonly string[], update: readonly string[], _noop?: string): string {
    const target = key.join(', ');
    if (update.length === 0) return ` ON CONFLICT (${target}) DO NOTHING`;
    return ` ON CONFLICT (${target}) DO UPDATE SET ${update.map((column) => `${column} = excluded.${column}`).join(', ')}`;
  }

  /**
   * What ends an `INSERT` whose row may exist already (its `key` is taken) by adding the proposed
   * row's `column` to the existing one's; `table` is the target as the statement names it.
   */
  onConflictAdd(key: readonly string[], table: string, column: string): string {
    return ` ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${column} = ${table}.${column} + excluded.${column}`;
  }

  /** `a` and `b` differ, NULL counting as a value. */
  distinct(a: string, b: string): string {
    return `${a} IS DISTINCT FROM ${b}`;
  }

  /**
   * `UPDATE target SET … WHERE …` reading a joined table: `set` names the target's columns
   * unqualified, `on` and `where` may name both aliases.
   */
  updateJoin(target: string, join: string, on: string, set: string, where: string): string {
    return `UPDATE ${target} SET ${set} FROM ${join} WHERE ${on} AND ${where}`;
  }

  /** `LIMIT n`, or nothing for "every row". */
  limit(count: number | undefined | null): string {
    return count === undefined || count === null ? '' : ` LIMIT ${Math.max(0, Math.floor(Number(count)))}`;
  }

  /**
   * The statement that bounds how long this session may sit idle in a transaction, or undefined
   * where there is no server to end it (SQLite).
   */
  idleLimit(_ms: number): string | undefined {
    return undefined;
  }

  /** A driver error that says "not reachable now" or "rolled back whole, try again". */
  isTransient(_error: unknown): boolean {
    return false;
  }

  /** A driver error that left its connection unusable: close it, never reuse it. */
  isFatal(_error: unknown): boolean {
    return false;
  }

  /** A statement that waited for another session's row locks past its bound. */
  isLockTimeout(_error: unknown): boolean {
    return false;
  }
}

/** The driver's error code, if it has one. */
export function errorCode(error: unknown): unknown {
  return error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined;
}
