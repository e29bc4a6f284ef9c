import type { JsonValue } from '../../json.ts';
import type { SourceCursor } from '../../source/source.ts';
import type { ProgressMarker } from '../policy/progress-mark.ts';
import type { CheckpointBoundary } from './checkpoint-boundary.ts';
import { isJsonScalar, positionProblem } from './positions.ts';
import { isThenable, type RecordRunInput } from './record-run.ts';
import { type Slot, SlotPool } from './record-slots.ts';

/** Where a run's failure came from (the failure line says which). */
export type FailedIn = 'record' | 'source' | 'checkpoint';

/** What `step` asks the loop's asynchronous half to await. */
export type Step = number;
export const STOP = 0;
export const AWAIT_RECORD = 1;
export const WAIT_SLOT = 2;
export const FLUSH = 3;
export const SOURCE = 4;
export const YIELD = 5;
export const CHECKPOINT = 6;
export const MARK = 7;

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
export const YIELD_EVERY_MS = 15;
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

/**
 * The synchronous half of the record loop (`RecordLoop` is the other): it runs records while
 * they need nothing awaited, with no promise or object of ours per record, and says what must be
 * awaited next. It keeps the counts the checkpoint and the progress events read.
 */
export abstract class RecordSteps {
  protected readonly input: RecordLoopInput;
  protected readonly slots: SlotPool;
  protected slot: Slot;
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
  protected stopped: boolean;
  /** Concurrency 1: the loop awaits each record's own promise. */
  protected readonly direct: boolean;
  /** Where the record at hand is in its phases (see `step`). */
  protected phase = IDLE;
  /** Records until the next look at the clock, and how many apart the looks are. */
  protected untilLook = 0;
  protected stride = 1;
  protected lastLook = performance.now();
  protected lastYield = this.lastLook;
  /** The shard total a progress mark must cover before the record at hand is dispatched. */
  protected markAt = 0;
  /** The record the loop awaits (concurrency 1): its promise, and what a slow finish needs. */
  protected pending: PromiseLike<unknown> | undefined;
  protected pendingRecord: unknown;
  protected pendingPosition: unknown;
  protected pendingError: Error | undefined;
  /** Called when the shard total reaches `mark` (rework timing). */
  protected onReached: (processed: number) => void = () => undefined;
  protected mark = -1;

  constructor(input: RecordLoopInput, resumed: { position: JsonValue | null; processed: number }, savepoint: boolean) {
    this.input = input;
    this.slots = new SlotPool(input, savepoint);
    this.slot = this.slots.take();
    this.direct = input.concurrency === 1;
    this.stopped = input.signal.aborted;
    this.processed = resumed.processed;
    this.dispatched = resumed.position;
  }

  /** Finishes a record in flight the slow way (retries, dead letters); never rejects. */
  protected abstract settle(
    slot: Slot,
    record: unknown,
    position: unknown,
    error: Error | undefined,
    failed: { error: unknown } | undefined,
    result?: unknown,
  ): Promise<void>;

  /** A record in flight finished: wake whoever waits for that. */
  protected abstract onSettled(): void;

  /**
   * Runs records until one needs awaiting, and says what (a record's promise, a free slot, the
   * source, a yield to timers, a checkpoint, a progress mark, a flush), or STOP. A record at hand
   * goes through its phases in order (look at the clock, checkpoint, position, mark, dispatch);
   * an await between two phases resumes at the next.
   */
  protected step(): Step {
    const { cursor, boundary, concurrency, marker } = this.input;
    for (;;) {
      if (this.stopped) return STOP;
      if (this.phase === IDLE) {
        if (!cursor.next()) return SOURCE;
        // A record is at hand. The boundary is checked now, so a source that ends right at a
        // boundary gets one checkpoint (the completing one), not two.
        this.phase = --this.untilLook <= 0 || boundary.countDue() ? LOOK : POSITION;
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
        if (boundary.due(performance.now())) return CHECKPOINT;
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
      boundary.sinceRecords++;
      const record = cursor.record;
      const error = cursor.error;
      const slot = this.slot;
      const result = this.runOne(slot, record, position, error);
      if (result === DONE) {
        this.finished();
        if (boundary.full) return FLUSH;
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
      if (boundary.full) return FLUSH;
    }
  }

  /** Counts a record the loop awaited itself, when it succeeded and its ctx.tx (if any) ends without waiting; false otherwise. */
  protected settledDirect(slot: Slot, failed: { error: unknown } | undefined): boolean {
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
  protected thrown: { error: unknown } | undefined;

  /**
   * Runs one record's first attempt in `slot`: DONE when it finished synchronously; the promise
   * `process` returned; or SLOW when it threw (`thrown`) or its `ctx.tx` must be awaited.
   */
  protected runOne(slot: Slot, record: unknown, position: unknown, error: Error | undefined): PromiseLike<unknown> | typeof DONE | typeof SLOW {
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
  protected finished(): void {
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
}
