import { createHash } from 'node:crypto';
import { UsageError } from '../../errors.ts';
import { paged } from '../cursor.ts';
import type { Source, SourceItem } from '../source.ts';
import { AT_LAST_COLUMN, countStatement, endStatement, type KeysetShape, keyTextColumn, pageStatement, quoteName } from './keyset-sql.ts';
import { dialectOf, openReader, type SqlConnection, type SqlReader } from './sql-client.ts';

/** One column of a key as a position holds it: JSON, and compared by the database as it was read. */
export type SqlKeyValue = string | number;
/** A single-column key's value, or one value per column of a composite key. */
export type SqlKey = SqlKeyValue | SqlKeyValue[];

export interface SqlTableOptions {
  /** `sqlite:PATH`, `postgres://…`, `mysql://…` (opened per read, closed after), or a ready client. */
  connection: SqlConnection;
  /** A table (`name` or `schema.name`)… */
  table?: string;
  /** …or a SELECT, read as a subquery: the key names its output columns. */
  query?: string;
  /** The unique, NOT NULL key the rows are ordered by: one column or several (composite). */
  key: string | readonly string[];
  /** Columns to read; default all. They must include the key. */
  columns?: readonly string[];
  /** A filter, in the database's own placeholders (`?`; `$1`… on PostgreSQL), e.g. a shard's tenant. */
  where?: string;
  /** Values for the placeholders of `where` or `query`. */
  params?: readonly unknown[];
  /** Rows per query; default 1000. */
  pageSize?: number;
  /**
   * `'rows'` (default): the fingerprint holds the row count and the first and last keys, so a
   * resume refuses (drift) a table that was reloaded, truncated, appended to or trimmed.
   * `'shape'`: only what is read (database kind, table or query, filter, key); use it for a table
   * that legitimately changes while the job runs — keyset paging itself tolerates inserts and deletes.
   */
  fingerprint?: 'rows' | 'shape';
}

/**
 * The rows of a table or query in key order, read a page at a time by seeking past the last key
 * (`WHERE key > last ORDER BY key LIMIT n`), never by OFFSET. The position is the last row's key:
 * its value, or an array of values for a composite key.
 */
export function sqlTable<R = Record<string, unknown>>(options: SqlTableOptions): Source<R, SqlKey> {
  const shape = shapeOf(options);
  const keys = shape.key;
  const pageSize = options.pageSize ?? 1000;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw new UsageError(`sqlTable: pageSize must be a whole number ≥ 1 (got ${pageSize})`);
  const composite = keys.length > 1;

  const keyOf = (row: Record<string, unknown>): SqlKeyValue[] =>
    keys.map((column) => {
      if (!(column in row)) throw new TypeError(`sqlTable: key column ${column} is not among the columns read`);
      return keyValue(row[column], column);
    });

  /**
   * Where a row read by a page sits: its key, a date or time key (a Date from pg) as the server's
   * text, which PostgreSQL compares exactly (see keyTextColumn); those columns leave the row.
   */
  const positionOf = (row: Record<string, unknown>): SqlKeyValue[] => {
    if (shape.dialect !== 'postgres') return keyOf(row);
    const key = keys.map((column, index) => {
      if (!(column in row)) throw new TypeError(`sqlTable: key column ${column} is not among the columns read`);
      const text = row[keyTextColumn(index)];
      return row[column] instanceof Date && typeof text === 'string' ? text : keyValue(row[column], column);
    });
    for (const index of keys.keys()) delete row[keyTextColumn(index)];
    return key;
  };

  return {
    // A page of rows per query; the runner walks a page without a promise per row.
    ...paged<R, SqlKey>(async function* (after, { signal }) {
      let last = after === undefined ? undefined : toKeyArray(after, keys.length);
      const reader = await openReader(options.connection);
      try {
        for (;;) {
          if (signal.aborted) return;
          const statement = pageStatement(shape, last, pageSize);
          const rows = await reader.all(statement.sql, statement.params);
          // After a key, the page starts with the rows the database holds equal to it: the one
          // read last (none if it was deleted since). Two or more: the key is not unique, and
          // seeking past it would skip all but one of them, silently; so the read fails.
          let equal = 0;
          if (last !== undefined) {
            while (equal < rows.length && atLast(rows[equal]?.[AT_LAST_COLUMN])) equal++;
            if (equal > 1) throw notUnique(keys, last, equal === statement.limit ? `at least ${equal}` : String(equal));
            for (const row of rows) delete row[AT_LAST_COLUMN];
          }
          const page: SourceItem<R, SqlKey>[] = [];
          for (let index = equal; index < rows.length; index++) {
            const row = rows[index] as Record<string, unknown>;
            last = positionOf(row);
            page.push({ position: composite ? last : (last[0] as SqlKeyValue), record: row as R });
          }
          yield page;
          if (rows.length < statement.limit) return;
        }
      } finally {
        await reader.close();
      }
    }),
    async size() {
      return withReader(options.connection, async (reader) => {
        const statement = countStatement(shape);
        const [row] = await reader.all(statement.sql, statement.params);
        return Number(Object.values(row ?? {})[0] ?? 0);
      });
    },
    async fingerprint() {
      const identity = identityOf(shape);
      if (options.fingerprint !== 'shape') {
        const data = await withReader(options.connection, async (reader) => {
          const count = countStatement(shape);
          const first = endStatement(shape, 'ASC');
          const lastRow = endStatement(shape, 'DESC');
          const [counted] = await reader.all(count.sql, count.params);
          const [head] = await reader.all(first.sql, first.params);
          const [tail] = await reader.all(lastRow.sql, lastRow.params);
          const parts = [
            `count=${Object.values(counted ?? {})[0]}`,
            `first=${JSON.stringify(head && keyOf(head))}`,
            `last=${JSON.stringify(tail && keyOf(tail))}`,
          ];
          // A TRUNCATE and reload, or a rewrite, gives a PostgreSQL table a new file: caught even
          // when the count and both ends come back the same.
          if (shape.dialect === 'postgres' && options.table !== undefined) {
            const [file] = await reader.all('SELECT pg_relation_filenode($1::regclass) AS node', [shape.from]);
            parts.push(`file=${file?.node}`);
          }
          return parts;
        });
        identity.push(...data);
      }
      return fingerprintOf(shape, identity);
    },
    /**
     * An incremental run's check. With `'shape'`, what is read must be the same; with `'rows'`,
     * rows have been added by definition, and a key that only grows keeps every position
     * meaningful: nothing is compared.
     */
    async continues(fingerprint) {
      return options.fingerprint !== 'shape' || fingerprint === fingerprintOf(shape, identityOf(shape));
    },
  };
}

/** The AT_LAST_COLUMN of a row: true (PostgreSQL) or 1 (SQLite, MySQL) when its key equals the last one read. */
function atLast(value: unknown): boolean {
  return value === true || value === 1 || value === '1' || value === 1n;
}

/** Rows sharing the key where a page ended or a run resumed: what `> key` would have skipped. */
function notUnique(keys: readonly string[], last: readonly SqlKeyValue[], rows: string): Error {
  const value = keys.map((column, index) => `${column} = ${JSON.stringify(last[index])}`).join(', ');
  return new Error(
    `sqlTable: the key (${keys.join(', ')}) is not unique: ${rows} rows have ${value}, where a page ended or a run resumed, and all but one would be skipped; make the key unique (a unique index, or more columns: key: [${keys.map((column) => `'${column}'`).join(', ')}, 'id'])`,
  );
}

function identityOf(shape: KeysetShape): string[] {
  return [shape.dialect, shape.from, shape.columns, shape.where ?? '', JSON.stringify(shape.key), hashParams(shape.params)];
}

function fingerprintOf(shape: KeysetShape, parts: string[]): string {
  return `sql:${shape.dialect}:${createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 24)}`;
}

function shapeOf(options: SqlTableOptions): KeysetShape {
  const dialect = dialectOf(options.connection);
  if ((options.table === undefined) === (options.query === undefined)) throw new UsageError('sqlTable: give either table or query');
  const key = typeof options.key === 'string' ? [options.key] : [...options.key];
  if (key.length === 0) throw new UsageError('sqlTable: key needs at least one column');
  for (const column of key) usableName(dialect, column);
  const from = options.table !== undefined ? usableName(dialect, options.table) : `(${options.query}) AS ckpt_keyset`;
  const columns = options.columns === undefined ? '*' : options.columns.map((column) => usableName(dialect, column)).join(', ');
  return { dialect, from, columns, key, params: options.params ?? [], ...(options.where === undefined ? {} : { where: options.where }) };
}

/** A name of the job's options, quoted; one no SQL name can be is the job's to fix (exit 2), not a failed run. */
function usableName(dialect: KeysetShape['dialect'], name: string): string {
  try {
    return quoteName(dialect, name);
  } catch (error) {
    throw new UsageError(`sqlTable: ${(error as Error).message}; give table, key and columns as plain names`, { cause: error });
  }
}

/** A key value as JSON can hold it and as the database compares it when handed back. */
function keyValue(value: unknown, column: string): SqlKeyValue {
  if (typeof value === 'number' || typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value === null || value === undefined) throw new TypeError(`sqlTable: key column ${column} is NULL in a row; the key must be unique and NOT NULL`);
  throw new TypeError(`sqlTable: key column ${column} holds a ${typeof value} (${Object.prototype.toString.call(value)}); use number, text or date keys`);
}

function toKeyArray(position: SqlKey, width: number): SqlKeyValue[] {
  const values = Array.isArray(position) ? position : [position];
  if (values.length !== width) throw new TypeError(`sqlTable: the position ${JSON.stringify(position)} does not match a key of ${width} column(s)`);
  return values;
}

function hashParams(params: readonly unknown[]): string {
  return createHash('sha256')
    .update(JSON.stringify(params, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)))
    .digest('hex')
    .slice(0, 16);
}

async function withReader<T>(connection: SqlConnection, work: (reader: SqlReader) => Promise<T>): Promise<T> {
  const reader = await openReader(connection);
  try {
    return await work(reader);
  } finally {
    await reader.close();
  }
}
