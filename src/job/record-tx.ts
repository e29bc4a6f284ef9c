import type { SqlDialect } from '../store/batch-sql.ts';
import type { SqlHandle, Tx } from '../store/store.ts';
import type { Baton } from './baton.ts';
import { type JobSql, type SqlResult, sqlQuery } from './job-sql.ts';
import { checkWrite, type StagedWrite, type WriteBuffer } from './write-buffer.ts';

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
}

/**
 * One attempt of one record at the shard's transaction (`ctx.tx`). Buffered writes are staged
 * here and reach the chunk's buffer only when the attempt succeeds, so a failed attempt that can
 * be retried or dead-lettered leaves no row behind. The first `query` takes the baton, sends the
 * buffered writes of records already finished (outside this record's savepoint, so a rollback
 * cannot undo them), opens the record's savepoint, then sends the record's own staged writes, so
 * the query sees them. `finish` releases the savepoint (the writes join the chunk) or rolls back to
 * it, then hands the baton on. Only the baton holder has a savepoint open, so one name never nests.
 */
export class RecordTx implements TxHandle {
  readonly dialect: SqlHandle['dialect'];
  readonly #baton: Baton;
  readonly #chunk: ChunkWrites;
  readonly #tx: Tx;
  readonly #sql: SqlHandle;
  readonly #savepoint: boolean;
  #staged: StagedWrite[] | undefined;
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

  async query<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: Row[]; rowCount: number }> {
    await this.#enter();
    const staged = this.#staged;
    if (staged !== undefined && staged.length > 0) {
      this.#staged = undefined;
      this.#chunk.buffer.append(staged);
      await this.#chunk.buffer.flush(this.#sql);
    }
    return this.#sql.query<Row>(text, params);
  }

  sql<Row = Record<string, unknown>>(strings: TemplateStringsArray, ...values: unknown[]): Promise<SqlResult<Row>> {
    const { text, params } = sqlQuery(this.dialect, strings, values);
    return this.query<Row>(text, params);
  }

  insert(table: string, row: { readonly [column: string]: unknown }): void {
    this.#stage({ kind: 'insert', table, row, key: checkWrite('insert', table, row) });
  }

  upsert(table: string, row: { readonly [column: string]: unknown }, options: { key: readonly string[] }): void {
    this.#stage({ kind: 'upsert', table, row, key: checkWrite('upsert', table, row, options?.key) });
  }

  delete(table: string, match: { readonly [column: string]: unknown }): void {
    this.#stage({ kind: 'delete', table, row: match, key: checkWrite('delete', table, match) });
  }

  #stage(write: StagedWrite): void {
    if (this.#finished) throw new Error(`ctx.tx.${write.kind} was called after its record finished; call it inside process()`);
    if (this.#staged === undefined) this.#staged = [write];
    else this.#staged.push(write);
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
    if (succeeded && this.#staged !== undefined) this.#chunk.buffer.append(this.#staged);
    this.#staged = undefined;
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
      if (succeeded && this.#staged !== undefined) this.#chunk.buffer.append(this.#staged);
    } finally {
      this.#staged = undefined;
      this.#release?.();
    }
  }
}

/** The dialect of the chunk's SQL, for its write buffer. */
export function dialectOf(sql: SqlHandle | undefined): SqlDialect {
  return (sql?.dialect ?? 'sqlite') as SqlDialect;
}
