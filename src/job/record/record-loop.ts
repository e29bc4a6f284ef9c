import type { JsonObject, JsonValue } from '../../json.ts';
import type { SourceCursor } from '../../source/source.ts';
import type { ProgressMarker } from '../policy/progress-mark.ts';
import type { CheckpointBoundary } from './checkpoint-boundary.ts';
import { isJsonScalar, positionProblem } from './positions.ts';
import { isThenable, needsSavepoint, processRecord, RecordAbandoned, type RecordRunInput } from './record-run.ts';
import { type Slot, SlotPool } from './record-slots.ts';

/** Where a run's failure came from (the failure line says which). */
export type FailedIn = 'record' | 'source' | 'checkpoint';

/** What `step` asks the loop's asynchronous half to await. */
type Step = number;
const STOP = 0;
const AWAIT_RECORD = 1;
const WAIT_SLOT = 2;
const FLUSH = 3;
const SOURCE = 4;
const YIELD = 5;
const CHECKPOINT = 6;
const MARK = 7;

/** Phases of the record at hand: none at hand; look at the clock; checkpoint due?; position and mark; dispatch. */
const IDLE = 0;
const LOOK = 1;
const DUE = 2;
const POSITION = 3;
const DISPATCH = 4;

/** `runOne`'s answers other than a promise: finished synchronously, or to be finished the slow way. */
const DONE = Symbol('done');
const SLOW = Symbol('slow');

/** How long the loop may run before it lets timers (heartbeat, signals) in. */
const YIELD_EVERY_MS = 15;
/** Records between two looks at the clock and the stop signal: adapted so a look comes every ~0.2–1 ms. */
const MAX_STRIDE = 1024;

export interface RecordLoopInput extends RecordRunInput {
  /** The open chunk: its writes, when it is due, its commit. */
  chunk: CheckpointBoundary;
  cursor: SourceCursor<unknown, unknown>;
  /** No record past its durable ceiling is dispatched (so a crash's rework is bounded). */
  marker: ProgressMarker;
  concurrency: number;
  /** Aborts the run (`signal` is its signal). */
  stop: AbortController;
  /** Called at each yield to the event loop (progress events). */
  onYield: () => void;
}

/**
 * The record loop of one shard run, in two halves. `step` is synchronous: it runs records while
 * they need nothing awaited, with no promise or object of ours per record, and says what must be
 * awaited next; `#loop` is asynchronous and only awaits what `step` asks for, then calls it
 * again. Records at hand whose `process` returns a non-promise run inside `step`; at concurrency
 * 1 the loop awaits a record's own promise; above it, up to `concurrency` are in flight, each
 * costing one promise of ours, plus a wake-up when the loop waits for a free slot. A record that
 * throws goes the slow way (retries, dead letters). Every record dispatched is finished, failed
 * or given up before the loop returns. The loop keeps the counts the checkpoint and the progress
 * events read.
 */
export class RecordLoop {
  private readonly input: RecordLoopInput;
  private readonly slots: SlotPool;
  private slot: Slot;
  /** Records finished by this run, and the shard total (records done, as the next checkpoint will say). */
  records = 0;
  processed: number;
  inFlight = 0;
  /**
   * Of `inFlight`, records whose code has returned and whose effects' deferred journal writes
   * (completions) are not yet durable: not counted as finished, so no checkpoint covers them
   * and drains wait for them, but they no longer take one of the `concurrency` places.
   */
  finishing = 0;
  /** Position of the last record dispatched: the next checkpoint's position once drained. */
  dispatched: JsonValue | null;
  /** Set by the first failure, whatever its value: a record may reject with `undefined`, which is still a failure. */
  failed = false;
  failure: unknown;
  /** What failed: a record, the source (an error, a misplaced position) or the chunk's checkpoint (its writes, its commit). */
  failedIn: FailedIn = 'record';
  failedPosition: JsonValue | null = null;
  /** The stop signal, as a field (an AbortSignal's `aborted` is a getter with a brand check, read per record). */
  private stopped: boolean;
  /** Concurrency 1: the loop awaits each record's own promise. */
  private readonly direct: boolean;
  /** Where the record at hand is in its phases (see `step`). */
  private phase = IDLE;
  /** Records until the next look at the clock, and how many apart the looks are. */
  private untilLook = 0;
  private stride = 1;
  private lastLook = performance.now();
  private lastYield = this.lastLook;
  /** The shard total a progress mark must cover before the record at hand is dispatched. */
  private markAt = 0;
  /** The record the loop awaits (concurrency 1): its promise, and what a slow finish needs. */
  private pending: PromiseLike<unknown> | undefined;
  private pendingRecord: unknown;
  private pendingPosition: unknown;
  private pendingError: Error | undefined;
  /** Called when the shard total reaches `mark` (rework timing). */
  private onReached: (processed: number) => void = () => undefined;
  private mark = -1;

  /** A record was given up mid-way by a stop: the open chunk must not be committed. */
  abandoned = false;
  exhausted = false;
  #waiters: (() => void)[] = [];
  /** Set while waiting for the source: wakes that wait (a stop, or a checkpoint fell due). */
  #wakeSource: ((result: undefined) => void) | undefined;
  /** Set while the loop awaits a record itself: a stop returns from `run` at once (the record still finishes, and `drain` waits for it). */
  #breakOut: (() => void) | undefined;

  constructor(input: RecordLoopInput, resumed: { position: JsonValue | null; processed: number }) {
    this.input = input;
    this.slots = new SlotPool(input, needsSavepoint(input));
    this.slot = this.slots.take();
    this.direct = input.concurrency === 1;
    this.stopped = input.signal.aborted;
    this.processed = resumed.processed;
    this.dispatched = resumed.position;
    input.signal.addEventListener('abort', () => {
      this.stopped = true;
      this.#wakeSource?.(undefined);
      this.#breakOut?.();
      this.#wakeAll();
    });
  }

  /**
   * Runs records until one needs awaiting, and says what (a record's promise, a free slot, the
   * source, a yield to timers, a checkpoint, a progress mark, a flush), or STOP. A record at hand
   * goes through its phases in order (look at the clock, checkpoint, position, mark, dispatch);
   * an await between two phases resumes at the next.
   */
  private step(): Step {
    const { cursor, chunk, concurrency, marker } = this.input;
    for (;;) {
      if (this.stopped) return STOP;
      if (this.phase === IDLE) {
        if (!cursor.next()) return SOURCE;
        // A record is at hand. The boundary is checked now, so a source that ends right at a
        // boundary gets one checkpoint (the completing one), not two.
        this.phase = --this.untilLook <= 0 || chunk.countDue() ? LOOK : POSITION;
      }
      if (this.phase === LOOK) {
        const now = performance.now();
        // About one look every half millisecond of work: often enough for time-based checkpoints
        // and for letting timers in, rarely enough to cost nothing on cheap records.
        // Past 1 ms the stride is cut to about half a millisecond's worth at once, so records that
        // turn slow hold timers up for one stride at most.
        const took = now - this.lastLook;
        if (took < 0.25) this.stride = Math.min(MAX_STRIDE, this.stride * 2);
        else if (took > 1) this.stride = Math.max(1, Math.floor((this.stride * 0.5) / took));
        this.untilLook = this.stride;
        this.lastLook = now;
        this.phase = DUE;
        if (now - this.lastYield > YIELD_EVERY_MS) return YIELD;
      }
      if (this.phase === DUE) {
        this.phase = POSITION;
        if (chunk.due(performance.now())) return CHECKPOINT;
      }
      const position = cursor.position;
      const previous = this.dispatched;
      if (this.phase === POSITION) {
        // A position that is not JSON, or a numeric one that does not increase, would make a resume
        // (strictly after the checkpoint's position) skip or redo records: fail before it is used.
        if (!(typeof position === 'number' && typeof previous === 'number' && position > previous && position !== Number.POSITIVE_INFINITY)) {
          const misplaced = positionProblem(previous, position);
          if (misplaced !== undefined) {
            this.fail(
              new Error(`${misplaced}; a source must yield JSON positions in increasing order, strictly after the one it was given`),
              position,
              'source',
            );
            return STOP;
          }
        }
        this.phase = DISPATCH;
        const count = this.processed + this.inFlight + 1;
        if (marker.needsMark(count)) {
          this.markAt = count;
          return MARK;
        }
      }
      // DISPATCH
      this.phase = IDLE;
      this.dispatched = position as JsonValue;
      chunk.sinceRecords++;
      const record = cursor.record;
      const error = cursor.error;
      const slot = this.slot;
      const result = this.runOne(slot, record, position, error);
      if (result === DONE) {
        this.finished();
        if (chunk.full) return FLUSH;
        continue;
      }
      this.inFlight++;
      if (result === SLOW) {
        // Failed at once (or its ctx.tx needs awaiting): retries and dead letters, in flight like any async record.
        this.slot = this.slots.take();
        void this.settle(slot, record, position, error, this.thrown);
        this.thrown = undefined;
      } else if (this.direct) {
        // Concurrency 1: the loop awaits the record's own promise; its context is the next one's.
        this.pending = result;
        this.pendingRecord = record;
        this.pendingPosition = position;
        this.pendingError = error;
        return AWAIT_RECORD;
      } else {
        // This record keeps its context until it settles; the next one gets another.
        this.slot = this.slots.take();
        void this.settle(slot, record, position, error, undefined, result);
      }
      if (this.inFlight - this.finishing >= concurrency) return WAIT_SLOT;
      if (chunk.full) return FLUSH;
    }
  }

  /** Counts a record the loop awaited itself, when it succeeded and its ctx.tx (if any) ends without waiting; false otherwise. */
  private settledDirect(slot: Slot, failed: { error: unknown } | undefined): boolean {
    const tx = slot.tx;
    if (failed !== undefined || (tx !== undefined && !tx.finishSync(true))) return false;
    slot.tx = undefined;
    this.pendingRecord = undefined;
    this.inFlight--;
    this.finished();
    this.onSettled();
    return true;
  }

  /** The error of the record `runOne` answered SLOW for, when it threw. */
  private thrown: { error: unknown } | undefined;

  /**
   * Runs one record's first attempt in `slot`: DONE when it finished synchronously; the promise
   * `process` returned; or SLOW when it threw (`thrown`) or its `ctx.tx` must be awaited.
   */
  private runOne(slot: Slot, record: unknown, position: unknown, error: Error | undefined): PromiseLike<unknown> | typeof DONE | typeof SLOW {
    slot.ctx.reuse(position);
    let result: unknown;
    try {
      if (error !== undefined) throw error;
      result = this.input.job.process(record, slot.ctx);
    } catch (thrown) {
      this.thrown = { error: thrown };
      return SLOW;
    }
    if (isThenable(result)) return result;
    const tx = slot.tx;
    if (tx === undefined) return DONE;
    if (tx.finishSync(true)) {
      slot.tx = undefined;
      return DONE;
    }
    return SLOW;
  }

  /** Calls `onReached` when the shard total reaches `mark` (from the record that gets it there). */
  at(mark: number, onReached: (processed: number) => void): void {
    this.mark = mark;
    this.onReached = onReached;
  }

  /** Counts one record finished by this run. */
  private finished(): void {
    this.records++;
    if (++this.processed === this.mark) this.onReached(this.processed);
  }

  fail(error: unknown, position: unknown, failedIn: FailedIn = 'record'): void {
    if (!this.failed) {
      this.failed = true;
      this.failure = error;
      this.failedIn = failedIn;
      this.failedPosition = isJsonScalar(position) ? position : null;
    }
    this.input.stop.abort('failed');
  }

  /** Wakes a wait for a quiet source when a time-based checkpoint falls due (called by the heartbeat). */
  wakeIfDue(): void {
    if (this.#wakeSource !== undefined && this.inFlight === 0 && this.input.chunk.due(performance.now())) this.#wakeSource(undefined);
  }

  /**
   * Runs records until the source ends, a stop or a failure. A stop while the loop awaits a
   * record returns at once, as it does from a wait for a free slot: the caller drains what is in
   * flight, with its deadline.
   */
  run(): Promise<void> {
    const looping = this.#loop();
    if (!this.direct) return looping;
    return new Promise<void>((resolve, reject) => {
      looping.then(resolve, reject);
      this.#breakOut = () => {
        // Only while a record is awaited: a checkpoint under way is never left behind.
        if (this.inFlight > 0) resolve();
      };
    });
  }

  /**
   * The loop's asynchronous half: it only awaits what `step` (synchronous, where the records
   * run) asks for. Kept small on purpose: an async function resumed after every record runs
   * unoptimised for long in a fresh process, a plain method called per step does not.
   */
  async #loop(): Promise<void> {
    const { chunk, concurrency, marker } = this.input;
    for (;;) {
      switch (this.step()) {
        case AWAIT_RECORD: {
          const slot = this.slot;
          let failed: { error: unknown } | undefined;
          try {
            await this.pending;
          } catch (caught) {
            failed = { error: caught };
          }
          this.pending = undefined;
          const writes = slot.ctx.durable();
          if (writes !== undefined && failed === undefined && slot.tx === undefined) {
            // Its effects' completions become durable while the next record runs: with its
            // first intent, in one commit.
            this.pendingRecord = undefined;
            void this.#finishing(writes, this.pendingPosition);
          } else {
            // Most records defer no journal write: no call, promise or await for them.
            if (writes !== undefined) failed = await durableWrites(writes, failed);
            if (!this.settledDirect(slot, failed)) {
              this.slot = this.slots.take();
              await this.settle(slot, this.pendingRecord, this.pendingPosition, this.pendingError, failed);
            }
          }
          if (this.failed || this.stopped) return;
          if (chunk.full) await chunk.flushIfFull();
          break;
        }
        case WAIT_SLOT:
          while (this.inFlight - this.finishing >= concurrency && !this.stopped) await this.#changed();
          if (this.failed || this.stopped) return;
          if (chunk.full) await chunk.flushIfFull();
          break;
        case FLUSH:
          await chunk.flushIfFull();
          break;
        case SOURCE: {
          let more: boolean | undefined;
          try {
            more = await this.#untilWoken(this.input.cursor.more());
          } catch (error) {
            this.fail(error, this.dispatched, 'source');
            return;
          }
          if (more === false) {
            this.exhausted = true;
            return;
          }
          if (more === undefined && (this.stopped || !(await this.#checkpoint()))) return;
          break;
        }
        case YIELD:
          await new Promise((resolve) => setImmediate(resolve));
          this.lastYield = performance.now();
          this.input.onYield();
          break;
        case CHECKPOINT:
          if (!(await this.#checkpoint())) return;
          break;
        case MARK:
          await marker.raise(this.markAt);
          if (this.stopped) return;
          break;
        default:
          return;
      }
    }
  }

  /**
   * Finishes an asynchronous record (its retries included) and counts it; records a failure
   * instead of throwing; never rejects. `result` is the promise of its first attempt, if still
   * to be awaited; `failed`, that attempt's error.
   */
  private async settle(
    slot: Slot,
    record: unknown,
    position: unknown,
    error: Error | undefined,
    failed: { error: unknown } | undefined,
    result?: unknown,
  ): Promise<void> {
    let given = false;
    try {
      if (failed === undefined) {
        try {
          await result;
        } catch (caught) {
          failed = { error: caught };
        }
      }
      const writes = slot.ctx.durable();
      if (writes !== undefined && failed === undefined && slot.tx === undefined) {
        // The record's code is done: its place goes to the next record while its effects'
        // completions become durable (with that record's first intent, in one commit).
        given = true;
        this.slots.give(slot);
        this.finishing++;
        this.#wakeAll();
        try {
          await writes;
        } finally {
          this.finishing--;
        }
        this.finished();
        return;
      }
      if (writes !== undefined) failed = await durableWrites(writes, failed);
      if (failed === undefined) {
        try {
          if (slot.tx !== undefined) await slot.tx.finish(true);
        } catch (caught) {
          failed = { error: caught };
        }
      }
      if (failed !== undefined) {
        if (slot.tx !== undefined) await slot.tx.finish(false);
        await processRecord({ position, record, ...(error === undefined ? {} : { error }) }, this.input, failed);
      }
      this.finished();
    } catch (caught) {
      if (caught instanceof RecordAbandoned) this.abandoned = true;
      else this.fail(caught, position);
    } finally {
      if (!given) this.slots.give(slot);
      this.inFlight--;
      this.#wakeAll();
    }
  }

  /**
   * A record the loop awaited itself (concurrency 1) whose code is done: counted once its
   * effects' deferred journal writes are durable, while the loop runs the next record. A write
   * that failed fails the run (the store is unreachable: the effect is left in doubt, and the
   * record is not counted, so a resume runs it again and `verify` settles it).
   */
  async #finishing(writes: Promise<unknown>, position: unknown): Promise<void> {
    this.finishing++;
    try {
      await writes;
      this.finished();
    } catch (caught) {
      this.fail(caught, position);
    } finally {
      this.finishing--;
      this.inFlight--;
      this.#wakeAll();
    }
  }

  private onSettled(): void {
    if (this.#waiters.length > 0) this.#wakeAll();
  }

  /** Stops intake, drains, commits at an interval boundary; false when the run must end instead. */
  async #checkpoint(): Promise<boolean> {
    const drainStarted = performance.now();
    if (!(await this.drainUnlessStopped())) return false;
    if (this.failed || this.abandoned) return false;
    await this.input.chunk.interval(this.progress(), drainStarted);
    return true;
  }

  progress(): { position: JsonValue | null; state: JsonObject; processed: number; records: number } {
    return { position: this.dispatched, state: this.input.state, processed: this.processed, records: this.records };
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
    while (this.inFlight > 0 && !this.stopped) await this.#changed();
    return this.inFlight === 0;
  }

  /**
   * The source's next records, or undefined when woken first (a stop, or a time-based
   * checkpoint due while the source is quiet): a quiet source holds up neither.
   */
  async #untilWoken(more: Promise<boolean>): Promise<boolean | undefined> {
    if (this.stopped) return undefined;
    const result = await new Promise<boolean | undefined>((resolve, reject) => {
      this.#wakeSource = resolve;
      more.then(resolve, reject);
    }).finally(() => {
      this.#wakeSource = undefined;
    });
    return result;
  }
}

/**
 * Waits for the journal writes the record's effects deferred (their completions): a record
 * counts as finished only once they are durable, and one that failed leaves none behind for the
 * next record of its context. A write that failed fails the record (its retry finds the effect
 * in doubt).
 */
async function durableWrites(writes: Promise<unknown>, failed: { error: unknown } | undefined): Promise<{ error: unknown } | undefined> {
  try {
    await writes;
    return failed;
  } catch (caught) {
    return failed ?? { error: caught };
  }
}
