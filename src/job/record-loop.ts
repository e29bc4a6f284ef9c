import type { JsonObject, JsonValue } from '../json.ts';
import type { SourceCursor } from '../source/source.ts';
import type { CheckpointBoundary } from './checkpoint-boundary.ts';
import { RecordContext } from './context.ts';
import { isJsonScalar, positionProblem } from './positions.ts';
import type { ProgressMarker } from './progress-mark.ts';
import { isThenable, needsSavepoint, processRecord, RecordAbandoned, type RecordRunInput } from './record-run.ts';
import { RecordTx, type TxHandle } from './record-tx.ts';

/** How long the loop may run before it lets timers (heartbeat, signals) in. */
const YIELD_EVERY_MS = 15;
/** Records between two looks at the clock and the stop signal: adapted so a look comes every ~0.2–1 ms. */
const MAX_STRIDE = 1024;

export interface RecordLoopInput extends RecordRunInput {
  cursor: SourceCursor<unknown, unknown>;
  boundary: CheckpointBoundary;
  /** No record past its durable ceiling is dispatched (so a crash's rework is bounded). */
  marker: ProgressMarker;
  concurrency: number;
  /** Aborts the run (`signal` is its signal). */
  stop: AbortController;
  /** Called at each yield to the event loop (progress events). */
  onYield: () => void;
}

/** One record's share of a context: its `ctx.tx`, made on first use. */
interface Slot {
  ctx: RecordContext<unknown, JsonObject>;
  tx: RecordTx | undefined;
}

/**
 * The record loop of one shard run. Records at hand (the source's cursor says so) whose `process`
 * returns a non-promise run in a tight synchronous loop, with one shared context and no promise
 * or object of ours per record; the boundary, the stop signal and the clock are looked at every
 * `stride` records. A record whose `process` returns a promise is in flight (up to `concurrency`)
 * and costs one promise of ours. A record that throws goes the slow way (retries, dead letters).
 * Every record dispatched is finished, failed or given up before the loop returns.
 */
export class RecordLoop {
  readonly #input: RecordLoopInput;
  readonly #savepoint: boolean;
  #slot: Slot;
  /** Records finished by this run, and the shard total (records done, as the next checkpoint will say). */
  records = 0;
  processed: number;
  inFlight = 0;
  /** Position of the last record dispatched: the next checkpoint's position once drained. */
  dispatched: JsonValue | null;
  failure: unknown;
  failedPosition: JsonValue | null = null;
  /** A record was given up mid-way by a stop: the open chunk must not be committed. */
  abandoned = false;
  exhausted = false;
  /** Called when the shard total reaches `#mark` (rework timing). */
  #onReached: (processed: number) => void = () => undefined;
  #mark = -1;
  /** Contexts of asynchronous records that have settled, ready for the next ones. */
  readonly #spare: Slot[] = [];
  #waiters: (() => void)[] = [];
  /** Set while waiting for the source: wakes that wait (a stop, or a checkpoint fell due). */
  #wakeSource: ((result: undefined) => void) | undefined;

  constructor(input: RecordLoopInput, resumed: { position: JsonValue | null; processed: number }) {
    this.#input = input;
    this.#savepoint = needsSavepoint(input);
    this.processed = resumed.processed;
    this.dispatched = resumed.position;
    this.#slot = this.#newSlot();
    input.signal.addEventListener('abort', () => {
      this.#wakeSource?.(undefined);
      this.#wakeAll();
    });
  }

  /** Wakes a wait for a quiet source when a time-based checkpoint falls due (called by the heartbeat). */
  wakeIfDue(): void {
    if (this.#wakeSource !== undefined && this.inFlight === 0 && this.#input.boundary.due(performance.now())) this.#wakeSource(undefined);
  }

  async run(): Promise<void> {
    const { cursor, boundary, concurrency, signal, marker } = this.#input;
    // Records until the next look at the clock, and how many apart the looks are.
    let stride = 1;
    let untilLook = 0;
    let lastLook = performance.now();
    let lastYield = lastLook;
    let previous = this.dispatched;
    for (;;) {
      if (!cursor.next()) {
        if (signal.aborted) return;
        const more = await this.#untilWoken(cursor.more());
        if (more === false) {
          this.exhausted = true;
          return;
        }
        if (more === undefined && (signal.aborted || !(await this.#checkpoint()))) return;
        continue;
      }
      // A record is at hand. The boundary is checked now, so a source that ends right at a
      // boundary gets one checkpoint (the completing one), not two.
      if (--untilLook <= 0 || boundary.countDue()) {
        const now = performance.now();
        // About one look every half millisecond of work: often enough for time-based checkpoints
        // and for letting timers in, rarely enough to cost nothing on cheap records.
        // Past 1 ms the stride is cut to about half a millisecond's worth at once, so records that
        // turn slow hold timers up for one stride at most.
        const took = now - lastLook;
        if (took < 0.25) stride = Math.min(MAX_STRIDE, stride * 2);
        else if (took > 1) stride = Math.max(1, Math.floor((stride * 0.5) / took));
        untilLook = stride;
        lastLook = now;
        if (now - lastYield > YIELD_EVERY_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          lastYield = performance.now();
          this.#input.onYield();
        }
        if (signal.aborted) return;
        if (boundary.due(now) && !(await this.#checkpoint())) return;
      }
      const position = cursor.position;
      // A position that is not JSON, or a numeric one that does not increase, would make a resume
      // (strictly after the checkpoint's position) skip or redo records: fail before it is used.
      if (!(typeof position === 'number' && typeof previous === 'number' && position > previous && position !== Number.POSITIVE_INFINITY)) {
        const misplaced = positionProblem(previous, position);
        if (misplaced !== undefined) {
          this.#fail(new Error(`${misplaced}; a source must yield JSON positions in increasing order, strictly after the one it was given`), position);
          return;
        }
      }
      const count = this.processed + this.inFlight + 1;
      if (marker.needsMark(count)) {
        await marker.raise(count);
        if (signal.aborted) return;
      }
      previous = position as JsonValue;
      this.dispatched = previous;
      boundary.sinceRecords++;
      const work = this.#runOne(cursor.record, position, cursor.error);
      if (work === undefined) {
        this.records++;
        if (++this.processed === this.#mark) this.#onReached(this.processed);
        continue;
      }
      this.inFlight++;
      while (this.inFlight >= concurrency && !signal.aborted) await this.#changed();
      if (this.failure !== undefined || signal.aborted) return;
      if (boundary.buffer.size > 0) await boundary.flushIfFull();
    }
  }

  /** Runs one record's first attempt: undefined when it finished synchronously, else its promise (never rejects). */
  #runOne(record: unknown, position: unknown, error: Error | undefined): Promise<void> | undefined {
    const slot = this.#slot;
    slot.ctx.reuse(position);
    let result: unknown;
    try {
      if (error !== undefined) throw error;
      result = this.#input.job.process(record, slot.ctx);
    } catch (thrown) {
      this.#slot = this.#newSlot();
      return this.#settle(undefined, slot, record, position, error, thrown);
    }
    if (isThenable(result)) {
      // This record keeps its context until it settles; the next one gets another.
      this.#slot = this.#newSlot();
      return this.#settle(result, slot, record, position, error);
    }
    const tx = slot.tx;
    if (tx === undefined) return undefined;
    slot.tx = undefined;
    if (tx.finishSync(true)) return undefined;
    this.#slot = this.#newSlot();
    slot.tx = tx;
    return this.#settle(undefined, slot, record, position, error);
  }

  /** Waits for an asynchronous record (its retries included) and counts it; records a failure instead of throwing. */
  async #settle(result: unknown, slot: Slot, record: unknown, position: unknown, error: Error | undefined, thrown?: unknown): Promise<void> {
    let failed: { error: unknown } | undefined = thrown !== undefined ? { error: thrown } : undefined;
    try {
      if (failed === undefined) {
        try {
          await result;
          if (slot.tx !== undefined) await slot.tx.finish(true);
        } catch (caught) {
          failed = { error: caught };
        }
      }
      if (failed !== undefined) {
        if (slot.tx !== undefined) await slot.tx.finish(false);
        await processRecord({ position, record, ...(error === undefined ? {} : { error }) }, this.#input, failed);
      }
      this.#finished(1);
    } catch (caught) {
      if (caught instanceof RecordAbandoned) this.abandoned = true;
      else this.#fail(caught, position);
    } finally {
      slot.tx = undefined;
      this.#spare.push(slot);
      this.inFlight--;
      this.#wakeAll();
    }
  }

  /** Calls `onReached` when the shard total reaches `mark` (from the record that gets it there). */
  at(mark: number, onReached: (processed: number) => void): void {
    this.#mark = mark;
    this.#onReached = onReached;
  }

  #finished(count: number): void {
    this.records += count;
    this.processed += count;
    if (this.processed === this.#mark) this.#onReached(this.processed);
  }

  #fail(error: unknown, position: unknown): void {
    if (this.failure === undefined) {
      this.failure = error;
      this.failedPosition = isJsonScalar(position) ? position : null;
    }
    this.#input.stop.abort('failed');
  }

  #newSlot(): Slot {
    const spare = this.#spare.pop();
    if (spare !== undefined) return spare;
    const input = this.#input;
    const slot: Slot = {
      ctx: new RecordContext({
        job: input.job.name,
        params: input.params,
        shard: input.lease.shard,
        position: undefined,
        state: input.state,
        signal: input.signal,
        log: input.log,
        sql: () => {
          const sql = input.boundary.tx().sql;
          if (sql === undefined) return undefined;
          slot.tx ??= new RecordTx(input.baton, input.boundary, sql, this.#savepoint);
          return slot.tx as TxHandle;
        },
        effects: input.effects,
      }),
      tx: undefined,
    };
    return slot;
  }

  /** Stops intake, drains, commits at an interval boundary; false when the run must end instead. */
  async #checkpoint(): Promise<boolean> {
    const drainStarted = performance.now();
    if (!(await this.drainUnlessStopped())) return false;
    if (this.failure !== undefined || this.abandoned) return false;
    await this.#input.boundary.interval(this.progress(), drainStarted);
    return true;
  }

  progress(): { position: JsonValue | null; state: JsonObject; processed: number; records: number } {
    return { position: this.dispatched, state: this.#input.state, processed: this.processed, records: this.records };
  }

  /** Resolves at the next record that settles, or at a stop. */
  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #wakeAll(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits for every record in flight, whatever happens (a stop included). */
  async drain(): Promise<void> {
    while (this.inFlight > 0) await this.#changed();
  }

  /** Drains unless stopped first; true when nothing is left in flight. */
  async drainUnlessStopped(): Promise<boolean> {
    while (this.inFlight > 0 && !this.#input.signal.aborted) await this.#changed();
    return this.inFlight === 0;
  }

  /**
   * The source's next records, or undefined when woken first (a stop, or a time-based
   * checkpoint due while the source is quiet): a quiet source holds up neither.
   */
  async #untilWoken(more: Promise<boolean>): Promise<boolean | undefined> {
    if (this.#input.signal.aborted) return undefined;
    const result = await new Promise<boolean | undefined>((resolve, reject) => {
      this.#wakeSource = resolve;
      more.then(resolve, reject);
    }).finally(() => {
      this.#wakeSource = undefined;
    });
    return result;
  }
}
