import type { SqlDialect } from './sql/dialect.ts';
import { dialect as dialectNamed } from './sql/dialects.ts';

export type { SqlDialect } from './sql/dialect.ts';

/**
 * The SQL of buffered `ctx.tx` writes (insert, upsert, delete), one multi-row statement per batch,
 * in each dialect's words: `?` or `$n` placeholders, `ON CONFLICT … DO UPDATE` or
 * `ON DUPLICATE KEY UPDATE`, quoted identifiers. Pure functions: the job layer decides when to send.
 */

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

/** Rows sent per statement for a shape in a dialect. */
export function rowsPerStatement(dialect: SqlDialect, shape: BatchShape): number {
  return Math.max(1, Math.min(dialectNamed(dialect).maxBatchRows, Math.floor(MAX_PARAMS / shape.columns.length)));
}

/** One statement writing `rows` rows of `shape`; its parameters are the rows' values, row after row. */
export function batchStatement(dialect: SqlDialect, shape: BatchShape, rows: number): string {
  const d = dialectNamed(dialect);
  const table = d.quoteTable(shape.table);
  const columns = shape.columns.map((column) => d.quote(column));
  if (shape.kind === 'delete') {
    const match = columns.length === 1 ? (columns[0] as string) : `(${columns.join(', ')})`;
    return `DELETE FROM ${table} WHERE ${match} IN (${tuples(dialect, rows, columns.length, columns.length === 1).join(', ')})`;
  }
  const insert = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples(dialect, rows, columns.length, false).join(', ')}`;
  if (shape.kind === 'insert') return insert;
  const updated = shape.columns.filter((column) => !shape.key.includes(column)).map((column) => d.quote(column));
  return `${insert}${d.onConflict(
    shape.key.map((column) => d.quote(column)),
    updated,
    columns[0],
  )}`;
}

function tuples(dialect: SqlDialect, rows: number, width: number, bare: boolean): string[] {
  const d = dialectNamed(dialect);
  const out: string[] = [];
  let n = 0;
  for (let row = 0; row < rows; row++) {
    const marks: string[] = [];
    for (let column = 0; column < width; column++) marks.push(d.placeholder(++n));
    out.push(bare ? (marks[0] as string) : `(${marks.join(', ')})`);
  }
  return out;
}
