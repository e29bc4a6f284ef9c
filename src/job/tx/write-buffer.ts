import { StoreUnavailableError } from '../../errors.ts';
import { type BatchKind, type BatchShape, batchStatement, rowsPerStatement, type SqlDialect } from '../../store/batch-sql.ts';
import type { SqlHandle } from '../../store/store.ts';

/** The row of a buffered `ctx.tx.insert/upsert` (column → value), or a delete's match. */
export type WriteRow = { readonly [column: string]: unknown };

interface Group extends BatchShape {
  values: unknown[];
  rows: number;
  /** Rows a statement takes in this shape and dialect: a batch with that many is worth sending. */
  perStatement: number;
  /** The statement of `perStatement` rows, built at the first send of a full one and kept with the group. */
  fullStatement: string | undefined;
  /** upsert: key values → row index, so one statement never touches a key twice (PostgreSQL refuses that). */
  keys?: Map<string, number>;
}

const NO_KEY: readonly string[] = [];

/** Column values held past which the buffer is sent, whatever its batches (many tables, few rows each). */
const MAX_VALUES = 40_000;

/**
 * The writes of the open chunk that need no answer, waiting to be sent as multi-row statements
 * before the next `ctx.tx.query` or the checkpoint's commit, inside the same transaction, so the
 * exactly-once guarantee is the one `query` has. Only writes of records that succeeded get here.
 *
 * Order: writes to one table keep their order exactly (a row joins the table's last batch only if
 * it has the same shape, else a new batch starts); batches of different tables are sent in the
 * order each first appeared, so parent rows inserted before their children still come first.
 */
export class WriteBuffer {
  readonly #dialect: SqlDialect;
  #groups: Group[] = [];
  readonly #lastByTable = new Map<string, Group>();
  /** The group the last row joined: most jobs write one table, so no map lookup per row. */
  #last: Group | undefined;
  /** Column values held (rows × their columns; every row has one at least): what the buffer's memory grows with. */
  #values = 0;
  #full = false;
  /** Set when a send failed: part of the buffer may be lost, so the chunk must never commit. */
  #failure: Error | undefined;

  constructor(dialect: SqlDialect) {
    this.#dialect = dialect;
  }

  /**
   * Worth sending now: a table's batch fills a whole statement (500 rows on SQLite, 1,000 on
   * PostgreSQL and MySQL, fewer for wide rows), or the buffer holds `MAX_VALUES` column values.
   * Sent that early, a row lives for a few hundred records: it dies young, where rows held until
   * the checkpoint would be copied by every minor GC until then. The number of statements is
   * the same either way.
   */
  get full(): boolean {
    return this.#full;
  }

  add(kind: BatchKind, table: string, row: WriteRow, key: readonly string[] = NO_KEY): void {
    let group = this.#last;
    if (group === undefined || group.table !== table) group = this.#lastByTable.get(table);
    if (group === undefined || group.kind !== kind || !sameKey(group.key, key) || !sameColumns(group.columns, row)) {
      const columns = Object.keys(row);
      group = { kind, table, columns, key, values: [], rows: 0, perStatement: 0, fullStatement: undefined };
      group.perStatement = rowsPerStatement(this.#dialect, group);
      if (kind === 'upsert') group.keys = new Map();
      this.#groups.push(group);
      this.#lastByTable.set(table, group);
    } else if (group.rows === 0) {
      // A table's batch sent earlier, of the same shape: it starts again (its statement is kept).
      this.#groups.push(group);
    }
    this.#last = group;
    const width = group.columns.length;
    if (group.keys !== undefined) {
      const identity = JSON.stringify(key.map((column) => row[column]));
      const at = group.keys.get(identity);
      if (at !== undefined) {
        // The same key again: the later values win, as they would have row after row.
        for (let column = 0; column < width; column++) group.values[at * width + column] = row[group.columns[column] as string];
        return;
      }
      group.keys.set(identity, group.rows);
    }
    const { columns, values } = group;
    for (let column = 0; column < width; column++) values.push(row[columns[column] as string]);
    this.#values += width;
    if (++group.rows >= group.perStatement || this.#values >= MAX_VALUES) this.#full = true;
  }

  /** Sends every buffered write through `sql` (the chunk's transaction) and empties the buffer. */
  async flush(sql: SqlHandle): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#values === 0) return;
    const groups = this.#groups;
    this.#empty();
    for (const group of groups) {
      const { perStatement, values } = group;
      const count = group.rows;
      // The group stays the table's last batch, empty: the next rows of its shape join it again.
      group.values = [];
      group.rows = 0;
      group.keys?.clear();
      const width = group.columns.length;
      if (count >= perStatement) group.fullStatement ??= batchStatement(this.#dialect, group, perStatement);
      const full = group.fullStatement ?? '';
      for (let from = 0; from < count; from += perStatement) {
        const rows = Math.min(perStatement, count - from);
        const text = rows === perStatement ? full : batchStatement(this.#dialect, group, rows);
        const params = from === 0 && rows === count ? values : values.slice(from * width, (from + rows) * width);
        try {
          await sql.query(text, params);
        } catch (error) {
          // A lost connection stays what it is: the run resumes from its checkpoint elsewhere.
          this.#failure =
            error instanceof StoreUnavailableError
              ? error
              : new Error(`a buffered ctx.tx.${group.kind} into ${group.table} failed when sent with the chunk: ${(error as Error).message}`, {
                  cause: error,
                });
          throw this.#failure;
        }
      }
    }
  }

  /** Forgets every buffered write and any failure to send (the chunk was rolled back). */
  clear(): void {
    this.#failure = undefined;
    this.#forget();
  }

  /** Forgets the batches too, so the next rows start new ones. */
  #forget(): void {
    this.#empty();
    this.#lastByTable.clear();
    this.#last = undefined;
  }

  /** No rows held; each table's last batch is remembered (with its statement) for the next. */
  #empty(): void {
    this.#groups = [];
    this.#values = 0;
    this.#full = false;
  }
}

function sameKey(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether `row` has exactly `columns`, in that order (no array built per row). */
function sameColumns(columns: readonly string[], row: WriteRow): boolean {
  let i = 0;
  for (const column in row) {
    if (columns[i] !== column) return false;
    i++;
  }
  return i === columns.length;
}

/** Checks a write's arguments where the job made it, so a mistake names its call, not a later flush. */
export function checkWrite(kind: BatchKind, table: unknown, row: unknown, key?: unknown): readonly string[] {
  const call = `ctx.tx.${kind}`;
  if (typeof table !== 'string' || table === '') throw new TypeError(`${call} needs a table name`);
  if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new TypeError(`${call}(${table}, …) needs a row object of column values`);
  let columns = 0;
  for (const column in row) {
    if ((row as { [column: string]: unknown })[column] === undefined) throw new TypeError(`${call}(${table}, …): column ${column} is undefined`);
    columns++;
  }
  if (columns === 0) throw new TypeError(`${call}(${table}, …) needs at least one column`);
  if (kind !== 'upsert') return NO_KEY;
  if (!Array.isArray(key) || key.length === 0 || key.some((column) => typeof column !== 'string' || !(column in row))) {
    throw new TypeError(`${call}(${table}, row, { key }) needs key: the columns of a unique key, each one of the row's columns`);
  }
  return key as string[];
}
