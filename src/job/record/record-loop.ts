import type { JsonObject, JsonValue } from '../../json.ts';
import { needsSavepoint, processRecord, RecordAbandoned } from './record-run.ts';
import type { Slot } from './record-slots.ts';
import { AWAIT_RECORD, CHECKPOINT, FLUSH, MARK, type RecordLoopInput, RecordSteps, SOURCE, WAIT_SLOT, YIELD } from './record-steps.ts';

export type { RecordLoopInput } from './record-steps.ts';

/**
 * The record loop of one shard run: the asynchronous half, which awaits what `RecordSteps.step`
 * (the synchronous half, where records run) asks for. Records at hand whose `process` returns a
 * non-promise run without a promise or object of ours; at concurrency 1 the loop awaits a
 * record's own promise; above it, up to `concurrency` are in flight, each costing one promise of
 * ours, plus a wake-up when the loop waits for a free slot. A record that throws goes the slow
 * way (retries, dead letters). Every record dispatched is finished, failed or given up before the
 * loop returns.
 */
export class RecordLoop extends RecordSteps {
  /** A record was given up mid-way by a stop: the open chunk must not be committed. */
  abandoned = false;
  exhausted = false;
  #waiters: (() => void)[] = [];
  /** Set while waiting for the source: wakes that wait (a stop, or a checkpoint fell due). */
  #wakeSource: ((result: undefined) => void) | undefined;
  /** Set while the loop awaits a record itself: a stop returns from `run` at once (the record still finishes, and `drain` waits for it). */
  #breakOut: (() => void) | undefined;

  constructor(input: RecordLoopInput, resumed: { position: JsonValue | null; processed: number }) {
    super(input, resumed, needsSavepoint(input));
    input.signal.addEventListener('abort', () => {
      this.stopped = true;
      this.#wakeSource?.(undefined);
      this.#breakOut?.();
      this.#wakeAll();
    });
  }

  /** Wakes a wait for a quiet source when a time-based checkpoint falls due (called by the heartbeat). */
  wakeIfDue(): void {
    if (this.#wakeSource !== undefined && this.inFlight === 0 && this.input.boundary.due(performance.now())) this.#wakeSource(undefined);
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
    const { boundary, concurrency, marker } = this.input;
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
          if (boundary.full) await boundary.flushIfFull();
          break;
        }
        case WAIT_SLOT:
          while (this.inFlight - this.finishing >= concurrency && !this.stopped) await this.#changed();
          if (this.failed || this.stopped) return;
          if (boundary.full) await boundary.flushIfFull();
          break;
        case FLUSH:
          await boundary.flushIfFull();
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
  protected async settle(
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

  protected onSettled(): void {
    if (this.#waiters.length > 0) this.#wakeAll();
  }

  /** Stops intake, drains, commits at an interval boundary; false when the run must end instead. */
  async #checkpoint(): Promise<boolean> {
    const drainStarted = performance.now();
    if (!(await this.drainUnlessStopped())) return false;
    if (this.failed || this.abandoned) return false;
    await this.input.boundary.interval(this.progress(), drainStarted);
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
