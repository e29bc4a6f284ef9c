import type { BatchKind, SqlDialect } from '../../store/batch-sql.ts';
import type { SqlHandle, Tx } from '../../store/store.ts';
import type { Baton } from './baton.ts';
import { type JobSql, type SqlResult, sqlQuery } from './job-sql.ts';
import { checkWrite, type WriteBuffer } from './write-buffer.ts';

const SAVEPOINT = 'ckpt_record';

/** `ctx.tx`: SQL in the transaction that commits with the checkpoint covering the record. */
export interface TxHandle extends JobSql {
  /**
   * Buffers an INSERT of one row (column → value); it is sent with others as one multi-row
   * statement before the next `query` or the checkpoint's commit, in the same transaction.
   */
  insert(table: string, row: { readonly [column: string]: unknown }): void;
  /** Buffers an insert that updates the row's other columns when `key` (a unique key's columns) conflicts. */
  upsert(table: string, row: { readonly [column: string]: unknown }, options: { key: readonly string[] }): void;
  /** Buffers a DELETE of the rows whose columns equal `match`'s values. */
  delete(table: string, match: { readonly [column: string]: unknown }): void;
}

/** What the record's writes go through: the chunk's transaction and its buffer of unsent writes. */
export interface ChunkWrites {
  tx(): Tx;
  buffer: WriteBuffer;
  /** Set when a record of the chunk uses `ctx.tx`: its checkpoint says so, and a resume never passes over it silently. */
  wroteTx?: boolean;
}

/**
 * One attempt of one record at the shard's transaction (`ctx.tx`). Buffered writes are staged
 * here and reach the chunk's buffer only when the attempt succeeds, so a failed attempt that can
 * be retried or dead-lettered leaves no row behind; with no savepoint (nothing to retry or
 * dead-letter: a failure fails the run and rolls the chunk back) they go to the buffer at once. The first `query` takes the baton, sends the
 * buffered writes of records already finished (outside this record's savepoint, so a rollback
 * cannot undo them), opens the record's savepoint, then sends the record's own staged writes, so
 * the query sees them. `finish` releases the savepoint (the writes join the chunk) or rolls back to
 * it, then hands the baton on. Only the baton holder has a savepoint open, so one name never nests.
 *
 * The record loop keeps one per context and `renew`s it for the context's next record (after the
 * last one finished), so a record that writes rows allocates nothing of ours but its staging.
 */
export class RecordTx implements TxHandle {
  readonly dialect: SqlHandle['dialect'];
  readonly #baton: Baton;
  readonly #chunk: ChunkWrites;
  #tx: Tx;
  #sql: SqlHandle;
  readonly #savepoint: boolean;
  /** The attempt's staged writes, as parallel arrays (kept between records, emptied by length). */
  readonly #kinds: BatchKind[] = [];
  readonly #tables: string[] = [];
  readonly #rows: { readonly [column: string]: unknown }[] = [];
  readonly #keys: (readonly string[])[] = [];
  #staged = 0;
  #release: (() => void) | undefined;
  #entering: Promise<void> | undefined;
  #finished = false;

  /** `savepoint` false: the record's failure fails the run, which rolls back the whole chunk. */
  constructor(baton: Baton, chunk: ChunkWrites, sql: SqlHandle, savepoint = true) {
    this.#baton = baton;
    this.#chunk = chunk;
    this.#tx = chunk.tx();
    this.#sql = sql;
    this.dialect = sql.dialect;
    this.#savepoint = savepoint;
  }

  /** The same handle for the context's next record, on the chunk's current transaction. */
  renew(sql: SqlHandle): this {
    this.#tx = this.#chunk.tx();
    this.#sql = sql;
    this.#staged = 0;
    this.#release = undefined;
    this.#entering = undefined;
    this.#finished = false;
    return this;
  }

  async query<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: Row[]; rowCount: number }> {
    await this.#enter();
    if (this.#staged > 0) {
      this.#unstage(true);
      await this.#chunk.buffer.flush(this.#sql);
    } else if (!this.#savepoint) {
      // The record's writes went straight to the chunk's buffer (see #stage): sent first, so the query sees them.
      await this.#chunk.buffer.flush(this.#sql);
    }
    return this.#sql.query<Row>(text, params);
  }

  sql<Row = Record<string, unknown>>(strings: TemplateStringsArray, ...values: unknown[]): Promise<SqlResult<Row>> {
    const { text, params } = sqlQuery(this.dialect, strings, values);
    return this.query<Row>(text, params);
  }

  insert(table: string, row: { readonly [column: string]: unknown }): void {
    this.#stage('insert', table, row, checkWrite('insert', table, row));
  }

  upsert(table: string, row: { readonly [column: string]: unknown }, options: { key: readonly string[] }): void {
    this.#stage('upsert', table, row, checkWrite('upsert', table, row, options?.key));
  }

  delete(table: string, match: { readonly [column: string]: unknown }): void {
    this.#stage('delete', table, match, checkWrite('delete', table, match));
  }

  #stage(kind: BatchKind, table: string, row: { readonly [column: string]: unknown }, key: readonly string[]): void {
    if (this.#finished) throw new Error(`ctx.tx.${kind} was called after its record finished; call it inside process()`);
    if (!this.#savepoint) {
      // Speed: with no savepoint a failed record fails the run, and the chunk is rolled back with
      // every buffered row, so there is nothing to keep apart: the write joins the chunk's buffer
      // at once, instead of being staged and copied there when the record ends (the default
      // job's path: ~10 % of the CPU time of 1,000,000 buffered inserts).
      this.#chunk.buffer.add(kind, table, row, key);
      return;
    }
    const at = this.#staged++;
    this.#kinds[at] = kind;
    this.#tables[at] = table;
    this.#rows[at] = row;
    this.#keys[at] = key;
  }

  /** Hands the staged writes to the chunk's buffer (`keep`) or drops them; either way none stay staged. */
  #unstage(keep: boolean): void {
    const count = this.#staged;
    this.#staged = 0;
    const buffer = this.#chunk.buffer;
    const rows = this.#rows;
    for (let at = 0; at < count; at++) {
      if (keep)
        buffer.add(
          this.#kinds[at] as BatchKind,
          this.#tables[at] as string,
          rows[at] as { readonly [column: string]: unknown },
          this.#keys[at] as readonly string[],
        );
      // Rows are the job's objects: not kept alive past their record (cleared here, not by
      // Array#fill, a builtin call that cost more than the loop for the one row most records stage).
      rows[at] = EMPTY_ROW;
    }
  }

  #enter(): Promise<void> {
    if (this.#finished) return Promise.reject(new Error('ctx.tx was used after its record finished; await every query inside process()'));
    this.#entering ??= (async () => {
      this.#release = await this.#baton.acquire();
      // Writes of records that already succeeded go first, outside this record's savepoint.
      await this.#chunk.buffer.flush(this.#sql);
      if (this.#savepoint) await this.#tx.savepoint(SAVEPOINT);
    })();
    return this.#entering;
  }

  /**
   * Ends the attempt without waiting when it never queried (no baton, no savepoint): true when
   * done; false when `finish` must be awaited instead.
   */
  finishSync(succeeded: boolean): boolean {
    if (this.#entering !== undefined) return false;
    this.#finished = true;
    if (this.#staged > 0) this.#unstage(succeeded);
    return true;
  }

  async finish(succeeded: boolean): Promise<void> {
    if (this.finishSync(succeeded)) return;
    this.#finished = true;
    try {
      await this.#entering;
      if (this.#savepoint) {
        if (succeeded) await this.#tx.releaseSavepoint(SAVEPOINT);
        else await this.#tx.rollbackToSavepoint(SAVEPOINT);
      }
      if (succeeded && this.#staged > 0) this.#unstage(true);
    } finally {
      if (this.#staged > 0) this.#unstage(false);
      this.#release?.();
    }
  }
}

const EMPTY_ROW: { readonly [column: string]: unknown } = Object.freeze({});

/** The dialect of the chunk's SQL, for its write buffer. */
export function dialectOf(sql: SqlHandle | undefined): SqlDialect {
  return (sql?.dialect ?? 'sqlite') as SqlDialect;
}
