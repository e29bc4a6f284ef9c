import type { SqlDialect } from '../../store/sql/dialect.ts';
import { dialect as dialectNamed } from '../../store/sql/dialects.ts';

/** What a keyset query reads: a table or a query, filtered, ordered by a unique key. */
export interface KeysetShape {
  dialect: SqlDialect;
  /** Quoted `schema.table`, or `(query) AS ckpt_keyset`. */
  from: string;
  /** Quoted columns, or `*`. */
  columns: string;
  key: readonly string[];
  /** The user's filter in the dialect's own placeholders (`?`, or `$1`… on PostgreSQL). */
  where?: string;
  params: readonly unknown[];
}

export interface Statement {
  sql: string;
  params: unknown[];
}

/** Quote an identifier, `schema.table` part by part. Names with the quote character are refused. */
export function quoteName(dialect: SqlDialect, name: string): string {
  const d = dialectNamed(dialect);
  for (const part of name.split('.')) {
    if (part === '' || part.includes(d.quoteCharacter) || part.includes('\0')) throw new TypeError(`not a usable SQL name: ${JSON.stringify(name)}`);
  }
  return d.quoteTable(name);
}

/**
 * The page from `after` (the last key read), `pageSize` rows in key order after it. Never OFFSET:
 * each page seeks through the key's index, so page 10,000 costs what page 1 costs.
 *
 * From `after` on, not strictly after it: the page starts with the rows the database holds equal
 * to the last key (flagged in AT_LAST_COLUMN, compared by the database, its collation included),
 * one more row in the LIMIT. One such row is the one read last; two or more say the key is not
 * unique, and `> after` would have skipped all but one of them (see sqlTable).
 *
 * PostgreSQL and SQLite compare row values, `(k1, k2) > ($1, $2)`, and both scan the key's index
 * for it. MySQL and MariaDB use only the first column of an index for a row-value comparison, so
 * there it is expanded to `k1 >= ? AND (k1 > ? OR (k1 = ? AND k2 > ?))`, the form their manuals
 * recommend (the leading `>=` gives the optimizer its range).
 */
export function pageStatement(shape: KeysetShape, after: readonly unknown[] | undefined, pageSize: number): Statement & { limit: number } {
  const dialect = dialectNamed(shape.dialect);
  const params: unknown[] = [...shape.params];
  const placeholder = (value: unknown) => {
    params.push(value);
    return dialect.placeholder(params.length);
  };
  const keys = shape.key.map((name) => quoteName(shape.dialect, name));
  const conditions: string[] = [];
  if (shape.where !== undefined) conditions.push(`(${shape.where})`);
  if (after !== undefined) conditions.push(afterCondition(shape.dialect, keys, after, placeholder));
  const where = conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : '';
  // PostgreSQL: each key also as the server's text (keyText), for a position a Date cannot hold.
  const texts = shape.dialect === 'postgres' ? keys.map((key, index) => `, ${key}::text AS ${quoteName('postgres', keyTextColumn(index))}`).join('') : '';
  let atLast = '';
  if (after !== undefined) {
    const start = params.length;
    atLast = `, (${keys.map((key, index) => `${key} = ${placeholder(after[index])}`).join(' AND ')}) AS ${quoteName(shape.dialect, AT_LAST_COLUMN)}`;
    // Positional `?`s take their values in the order they are written: the select list's first.
    if (!dialect.numberedParameters) params.unshift(...params.splice(start));
  }
  const limit = after === undefined ? pageSize : pageSize + 1;
  const sql = `SELECT ${shape.columns}${texts}${atLast} FROM ${shape.from}${where} ORDER BY ${keys.join(', ')} LIMIT ${limit}`;
  return { sql, params, limit };
}

/** The column a page after a key adds: whether the database holds the row's key equal to that key. */
export const AT_LAST_COLUMN = 'ckpt$at_last';

/**
 * The column a PostgreSQL page adds for key column `index`: its value as the server's text. pg
 * hands dates and times over as a Date, which reads a `timestamp` in the process's time zone and
 * drops microseconds: a position made of it would skip or repeat rows.
 */
export function keyTextColumn(index: number): string {
  return `ckpt$key_text_${index}`;
}

/** The keys from `after` on (`>=`; see pageStatement). */
function afterCondition(dialect: SqlDialect, keys: string[], after: readonly unknown[], placeholder: (value: unknown) => string): string {
  if (keys.length === 1) return `${keys[0]} >= ${placeholder(after[0])}`;
  if (dialectNamed(dialect).rowValueSeek) return `(${keys.join(', ')}) >= (${after.map(placeholder).join(', ')})`;
  const expand = (index: number): string => {
    const greater = `${keys[index]} ${index === keys.length - 1 ? '>=' : '>'} ${placeholder(after[index])}`;
    if (index === keys.length - 1) return greater;
    return `${greater} OR (${keys[index]} = ${placeholder(after[index])} AND (${expand(index + 1)}))`;
  };
  return `${keys[0]} >= ${placeholder(after[0])} AND (${expand(0)})`;
}

export function countStatement(shape: KeysetShape): Statement {
  const where = shape.where === undefined ? '' : ` WHERE (${shape.where})`;
  return { sql: `SELECT COUNT(*) AS n FROM ${shape.from}${where}`, params: [...shape.params] };
}

/** The first (`ASC`) or last (`DESC`) key: with the count, what the fingerprint is made of. */
export function endStatement(shape: KeysetShape, direction: 'ASC' | 'DESC'): Statement {
  const keys = shape.key.map((name) => quoteName(shape.dialect, name));
  const where = shape.where === undefined ? '' : ` WHERE (${shape.where})`;
  const order = keys.map((key) => `${key} ${direction}`).join(', ');
  return { sql: `SELECT ${keys.join(', ')} FROM ${shape.from}${where} ORDER BY ${order} LIMIT 1`, params: [...shape.params] };
}
