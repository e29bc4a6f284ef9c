import { type HeldError, JobFailedError } from '../../errors.ts';
import type { JsonObject, JsonValue } from '../../json.ts';
import type { Lease, RunProgress, Store, Tx } from '../../store/store.ts';
import { asStoreError } from '../../store/transient.ts';
import type { CheckpointPolicy } from '../policy/policy.ts';
import type { Baton } from '../tx/baton.ts';
import { type ChunkWrites, dialectOf } from '../tx/record-tx.ts';
import { WriteBuffer } from '../tx/write-buffer.ts';
import type { Emit } from './record-run.ts';
import { stateProblem } from './state-check.ts';

export interface BoundaryInput {
  store: Store;
  lease: Lease;
  policy: CheckpointPolicy;
  emit: Emit;
  baton: Baton;
  /** The run's statistics written with each commit (policy, interval, rework). */
  runStats: () => RunProgress['stats'];
  /** The source's `committed` hook: told each committed position, so it acknowledges upstream only what is durable. */
  committed?: ((position: JsonValue) => Promise<void> | void) | undefined;
  /** The hold the run's effects met, if any: then no checkpoint is committed (see Effects.held). */
  held?: () => HeldError | undefined;
}

/** What the record loop has done, as the boundary commits it. */
export interface Progress {
  /** Position of the last record dispatched (every record up to it is done once drained). */
  position: JsonValue | null;
  state: JsonObject;
  /** Shard total, records done. */
  processed: number;
  /** Records finished by this run. */
  records: number;
}

/**
 * The open chunk of a shard run and its checkpoint boundary: the transaction `ctx.tx` writes
 * into, its buffer of writes not sent yet, when the next checkpoint is due, and the commit that
 * makes position + state + those writes durable together. The record loop drains records in
 * flight before `commit`, so a checkpoint covers exactly the records dispatched before it.
 */
export class CheckpointBoundary implements ChunkWrites {
  readonly #input: BoundaryInput;
  #tx: Tx;
  buffer: WriteBuffer;
  /** A record of the open chunk used `ctx.tx` (stored with its checkpoint: see `CorruptCheckpointError`). */
  wroteTx = false;
  /** Records dispatched since the last checkpoint. */
  sinceRecords = 0;
  /** When the work since the last checkpoint began (performance.now()). */
  sinceStart = performance.now();
  checkpoints = 0;
  checkpointMs = 0;
  /** Where the last committed checkpoint stands. */
  position: JsonValue | null;
  committed: number;
  lastCheckpointAt = Date.now();
  readonly #every: number | undefined;

  private constructor(input: BoundaryInput, tx: Tx, resumed: { position: JsonValue | null; processed: number }) {
    this.#input = input;
    this.#tx = tx;
    this.buffer = new WriteBuffer(dialectOf(tx.sql));
    this.position = resumed.position;
    this.committed = resumed.processed;
    const spec = input.policy.spec;
    this.#every = typeof spec === 'object' && 'every' in spec ? spec.every : undefined;
  }

  /** Opens the first chunk (only once the source opened: a failed start leaves no transaction open). */
  static async open(input: BoundaryInput, resumed: { position: JsonValue | null; processed: number }): Promise<CheckpointBoundary> {
    return new CheckpointBoundary(input, await input.store.begin(input.lease), resumed);
  }

  tx(): Tx {
    return this.#tx;
  }

  /** Is a checkpoint due before the next record? */
  due(now: number): boolean {
    return this.sinceRecords > 0 && this.#input.policy.due(this.sinceRecords, now - this.sinceStart);
  }

  /** A fixed `every: N` boundary is reached (checked per record: it must be exact, and it is one comparison). */
  countDue(): boolean {
    return this.#every !== undefined && this.sinceRecords >= this.#every;
  }

  /** Buffered writes fill a statement: `flushIfFull` would send them (a field read, per record). */
  get full(): boolean {
    return this.buffer.full;
  }

  /** Sends buffered writes as soon as they fill a statement; waits for the baton so no record's savepoint is open. */
  async flushIfFull(): Promise<void> {
    const sql = this.#tx.sql;
    if (!this.full || sql === undefined) return;
    const release = await this.#input.baton.acquire();
    try {
      await this.buffer.flush(sql);
    } finally {
      release();
    }
  }

  /**
   * Sends the buffered writes, then commits them with the checkpoint (and, when `complete`, the
   * shard's completion) in one transaction; the next chunk opens unless the shard completed.
   * Returns the checkpoint's cost, from `drainStarted` (the moment intake stopped) to the commit.
   */
  async commit(progress: Progress, complete: boolean, drainStarted: number): Promise<number> {
    const { store, lease, emit } = this.#input;
    // A run that met a hold commits nothing more, even if the job's code caught the HeldError:
    // a record that swallowed it would otherwise count as done without its effect.
    const held = this.#input.held?.();
    if (held !== undefined) throw held;
    // Before anything is sent: a state JSON would give back as another type fails the run here.
    const problem = stateProblem(progress.state);
    if (problem !== undefined) throw new JobFailedError(`${problem}; a checkpoint keeps the state as JSON`, { shard: lease.shard });
    const sql = this.#tx.sql;
    if (sql !== undefined) await this.buffer.flush(sql);
    const run = {
      processed: progress.records,
      markProcessed: progress.processed,
      checkpoints: this.checkpoints + 1,
      checkpointMs: this.checkpointMs,
      stats: this.#input.runStats(),
      complete,
    };
    const saved = await store
      .commit(this.#tx, { position: progress.position, state: progress.state, processed: progress.processed, wroteTx: this.wroteTx }, run)
      .catch((error: unknown) => {
        throw asStoreError(error, store.location);
      });
    const ms = performance.now() - drainStarted;
    this.checkpoints++;
    this.checkpointMs += ms;
    this.position = saved.position;
    this.committed = saved.processed;
    this.lastCheckpointAt = saved.createdAt;
    await emit('checkpoint', { shard: lease.shard, seq: saved.seq, position: this.position, processed: progress.processed, records: this.sinceRecords, ms });
    // After the commit, never before it; a failed acknowledgement is repeated by the next run, which
    // acknowledges everything up to the checkpoint it resumes from.
    if (this.#input.committed !== undefined && saved.position !== null) await Promise.resolve(this.#input.committed(saved.position)).catch(() => undefined);
    this.sinceRecords = 0;
    this.sinceStart = performance.now();
    this.wroteTx = false;
    if (!complete) this.#tx = await store.begin(lease);
    return ms;
  }

  /** A checkpoint at an interval boundary, fed back to the policy. */
  async interval(progress: Progress, drainStarted: number): Promise<void> {
    const records = this.sinceRecords;
    const workMs = drainStarted - this.sinceStart;
    const checkpointMs = await this.commit(progress, false, drainStarted);
    this.#input.policy.observe({ records, workMs, checkpointMs });
  }

  /** Discards the open chunk: its transaction and the writes not sent yet. */
  async rollback(): Promise<void> {
    this.buffer.clear();
    await this.#input.store.rollback(this.#tx).catch(() => undefined);
  }
}
