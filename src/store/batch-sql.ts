/**
 * The SQL of buffered `ctx.tx` writes (insert, upsert, delete), one multi-row statement per batch,
 * in each dialect's words: `?` or `$n` placeholders, `ON CONFLICT … DO UPDATE` or
 * `ON DUPLICATE KEY UPDATE`, quoted identifiers. Pure functions: the job layer decides when to send.
 */

/** The SQL dialects whose stores give jobs a transaction (`ctx.tx`). */
export type SqlDialect = 'sqlite' | 'postgres' | 'mysql';

export type BatchKind = 'insert' | 'upsert' | 'delete';

/** What every row of one batch shares. */
export interface BatchShape {
  kind: BatchKind;
  table: string;
  /** insert/upsert: the row's columns; delete: the columns of the match. */
  columns: readonly string[];
  /** upsert: the conflict target (ignored by MySQL, which uses whichever unique key conflicts). */
  key: readonly string[];
}

/**
 * Bind parameters per statement, kept under every backend's limit (SQLite 32,766, PostgreSQL and
 * MySQL 65,535) with room to spare; past a few hundred rows a bigger statement gains little.
 */
const MAX_PARAMS = 30_000;
const MAX_ROWS: Record<SqlDialect, number> = { sqlite: 500, postgres: 1000, mysql: 1000 };

/** Rows sent per statement for a shape in a dialect. */
export function rowsPerStatement(dialect: SqlDialect, shape: BatchShape): number {
  return Math.max(1, Math.min(MAX_ROWS[dialect], Math.floor(MAX_PARAMS / shape.columns.length)));
}

/** One statement writing `rows` rows of `shape`; its parameters are the rows' values, row after row. */
export function batchStatement(dialect: SqlDialect, shape: BatchShape, rows: number): string {
  const table = quoteTable(dialect, shape.table);
  const columns = shape.columns.map((column) => quoteIdentifier(dialect, column));
  if (shape.kind === 'delete') {
    const match = columns.length === 1 ? (columns[0] as string) : `(${columns.join(', ')})`;
    return `DELETE FROM ${table} WHERE ${match} IN (${tuples(dialect, rows, columns.length, columns.length === 1).join(', ')})`;
  }
  const insert = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples(dialect, rows, columns.length, false).join(', ')}`;
  if (shape.kind === 'insert') return insert;
  const updated = shape.columns.filter((column) => !shape.key.includes(column)).map((column) => quoteIdentifier(dialect, column));
  if (dialect === 'mysql') {
    // Every column a key: a no-op assignment is MySQL's way to say "do nothing" on a duplicate.
    const first = columns[0] as string;
    const set = updated.length === 0 ? `${first} = ${first}` : updated.map((column) => `${column} = VALUES(${column})`).join(', ');
    return `${insert} ON DUPLICATE KEY UPDATE ${set}`;
  }
  const target = shape.key.map((column) => quoteIdentifier(dialect, column)).join(', ');
  if (updated.length === 0) return `${insert} ON CONFLICT (${target}) DO NOTHING`;
  return `${insert} ON CONFLICT (${target}) DO UPDATE SET ${updated.map((column) => `${column} = excluded.${column}`).join(', ')}`;
}

function tuples(dialect: SqlDialect, rows: number, width: number, bare: boolean): string[] {
  const out: string[] = [];
  let n = 0;
  for (let row = 0; row < rows; row++) {
    const marks: string[] = [];
    for (let column = 0; column < width; column++) marks.push(dialect === 'postgres' ? `$${++n}` : '?');
    out.push(bare ? (marks[0] as string) : `(${marks.join(', ')})`);
  }
  return out;
}

/** A table name, schema-qualified or not ("audit.grants"): each part quoted on its own. */
export function quoteTable(dialect: SqlDialect, table: string): string {
  return table
    .split('.')
    .map((part) => quoteIdentifier(dialect, part))
    .join('.');
}

export function quoteIdentifier(dialect: SqlDialect, name: string): string {
  return dialect === 'mysql' ? `\`${name.replaceAll('`', '``')}\`` : `"${name.replaceAll('"', '""')}"`;
}
