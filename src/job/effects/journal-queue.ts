import type { JournalFence, JournalOutcome, JournalWrite, Store } from '../../store/store.ts';

/** Writes in one batch at most: bounds a statement's size and a batch's commit time. */
const MAX_BATCH = 500;
/** How long deferred writes wait for a write someone waits on before they go alone. */
export const HOLD_MS = 5;
/**
 * Batches sent ahead and not yet answered, at most, where the store can send ahead
 * (EffectJournal.sendAhead): the next batch goes while the one before is still on its way.
 */
export const AHEAD = 2;

/** A batch sent ahead (EffectJournal.sendAhead), not yet settled. */
interface Ahead {
  batch: Waiting[];
  sent: Promise<boolean>;
}

interface Waiting {
  write: JournalWrite;
  /** No caller waits on it to go on (a completion its record defers): it need not go at once. */
  deferred: boolean;
  resolve: (outcome: JournalOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit of one shard run's effect journal writes. A write waits in the queue; whatever
 * is waiting when the batch before it returns goes, in order, in the next one: one call to
 * `store.journal`, so one transaction, one fsync, one chain append. A batch starts on
 * `setImmediate`, so that everything queued in one turn of the event loop (records in flight
 * resuming from the same timer, the callers of the batch that just returned) travels together;
 * on SQLite, whose writes block the event loop, that is what makes a batch at all. Each write's
 * promise settles when its batch is durable, or rejects with its error: a caller learns only
 * of its own write, and never before it is durable. A write is durable only if every write
 * queued before it is: batches are applied in the order taken, and a failed one refuses the
 * writes behind it. Where the store can send a batch ahead (EffectJournal.sendAhead), up to
 * AHEAD batches are on their way at once, each linked after the one before, so none is applied
 * unless the one before it was; they are settled in the order sent, and one that was not applied
 * is written again with `journal`, and so is every batch behind it, in order, before anything
 * else is sent. A batch holds no key twice (a key's second
 * write waits for the next batch), so the writes of a batch never depend on each other's order.
 * A batch of deferred writes only (completions a record waits for before it counts, while its
 * code has moved on) waits for a write someone waits on, `HOLD_MS` at most: between a record and
 * the next the record loop lets timers in and may raise its progress mark (a round trip), so at
 * concurrency 1 a record's last completion would otherwise go alone, one commit ahead of the
 * next record's first intent, which would wait for it. The hold widens the window in which a
 * crash leaves that effect in doubt (settled by `verify`) by as much, never more.
 */
export class JournalQueue {
  readonly #store: Pick<Store, 'journal' | 'sendAhead'>;
  readonly #instanceId: number;
  /** The lease every batch is written under (EffectJournal.journal), if any. */
  readonly #fence: JournalFence | undefined;
  #waiting: Waiting[] = [];
  /** A batch is being written with `journal`: nothing is sent meanwhile. */
  #busy = false;
  /** Batches sent ahead, in the order sent: settled in that order. */
  readonly #ahead: Ahead[] = [];
  /** Settles the batches sent ahead one after another. */
  #settling: Promise<void> = Promise.resolve();
  /** A batch sent ahead was not applied, so neither are those behind it: nothing is sent until all are settled. */
  #redoing = false;
  /** A batch that could not go ahead waits here until every batch sent ahead is settled. */
  #blocked: Waiting[] | undefined;
  /** The error of a batch that failed while batches were ahead: those behind it are refused with it. */
  #failed: { error: unknown } | undefined;
  #scheduled = false;
  /** Deferred writes only are waiting, held until a write someone waits on joins them or HOLD_MS passes. */
  #hold: NodeJS.Timeout | undefined;
  /** The waiting writes have been held their HOLD_MS: they go at the next turn, whatever joins them. */
  #held = false;

  readonly #holdMs: number;
  readonly #aheadMax: number;

  constructor(store: Pick<Store, 'journal' | 'sendAhead'>, instanceId: number, fence?: JournalFence, holdMs = HOLD_MS, aheadMax = AHEAD) {
    this.#store = store;
    this.#instanceId = instanceId;
    this.#fence = fence;
    this.#holdMs = holdMs;
    this.#aheadMax = aheadMax;
  }

  /** Resolves when `write` is durable, with its outcome (see JournalOutcome). */
  write(write: JournalWrite, options: { deferred?: boolean } = {}): Promise<JournalOutcome> {
    return new Promise((resolve, reject) => {
      const deferred = options.deferred === true;
      this.#waiting.push({ write, deferred, resolve, reject });
      if (!deferred && this.#hold !== undefined) {
        clearTimeout(this.#hold);
        this.#hold = undefined;
      }
      this.#schedule();
    });
  }

  /** Nothing can be sent now: a batch is being written, or waits for the batches ahead, or as many as allowed are ahead. */
  #stalled(): boolean {
    return this.#busy || this.#redoing || this.#blocked !== undefined || this.#ahead.length >= Math.max(1, this.#aheadMax);
  }

  #schedule(): void {
    if (this.#stalled() || this.#scheduled || this.#hold !== undefined || this.#waiting.length === 0) return;
    if (!this.#held && this.#waiting.every((waiting) => waiting.deferred)) {
      this.#hold = setTimeout(() => {
        this.#hold = undefined;
        this.#held = true;
        this.#schedule();
      }, this.#holdMs);
      return;
    }
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#held = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#stalled()) return;
    const batch = this.#take();
    if (batch.length === 0) return;
    const sent =
      this.#aheadMax > 0
        ? this.#store.sendAhead?.(
            this.#instanceId,
            batch.map((waiting) => waiting.write),
            this.#fence,
          )
        : undefined;
    if (sent !== undefined) {
      const ahead = { batch, sent };
      this.#ahead.push(ahead);
      this.#settling = this.#settling.then(() => this.#settle(ahead));
      this.#schedule();
      return;
    }
    if (this.#ahead.length > 0) {
      // Behind batches sent ahead, one that cannot go ahead waits for them all to settle.
      this.#blocked = batch;
      return;
    }
    void this.#write(batch);
  }

  /** A batch sent ahead, once every batch sent before it is settled: applied, or written with `journal`. */
  async #settle(ahead: Ahead): Promise<void> {
    let applied = false;
    try {
      applied = await ahead.sent;
    } catch {
      // Its connection broke, or the server refused it: written again below, which says which.
    }
    if (this.#failed !== undefined) {
      for (const waiting of ahead.batch) waiting.reject(this.#failed.error);
    } else if (applied) {
      for (const waiting of ahead.batch) waiting.resolve(undefined);
    } else {
      this.#redoing = true;
      await this.#write(ahead.batch);
    }
    this.#ahead.shift();
    if (this.#ahead.length === 0) {
      const failed = this.#failed;
      const blocked = this.#blocked;
      this.#failed = undefined;
      this.#redoing = false;
      this.#blocked = undefined;
      if (blocked !== undefined) {
        if (failed === undefined) {
          void this.#write(blocked);
          return;
        }
        for (const waiting of blocked) waiting.reject(failed.error);
      }
    }
    this.#schedule();
  }

  /** `batch` with `journal`; nothing else is sent until it returns. */
  async #write(batch: Waiting[]): Promise<void> {
    this.#busy = true;
    try {
      const outcomes = await this.#store.journal(
        this.#instanceId,
        batch.map((waiting) => waiting.write),
        this.#fence,
      );
      batch.forEach((waiting, i) => {
        waiting.resolve(outcomes[i]);
      });
    } catch (error) {
      // All or nothing: every write of a failed batch is refused, and so is every write queued
      // behind it, so that no write becomes durable after one queued before it was lost (an
      // effect's completion deferred by its record is never overtaken by the record's next intent).
      for (const waiting of [...batch, ...this.#waiting.splice(0)]) waiting.reject(error);
      if (this.#ahead.length > 0) this.#failed = { error };
    } finally {
      this.#busy = false;
      this.#schedule();
    }
  }

  /** The next batch: the oldest writes, up to the first that names a key already in it. */
  #take(): Waiting[] {
    const keys = new Set<string>();
    let count = 0;
    for (; count < this.#waiting.length && count < MAX_BATCH; count++) {
      const write = (this.#waiting[count] as Waiting).write;
      if (write.kind === 'events') continue;
      const key = `${write.scope.generation}:${write.key}`;
      if (keys.has(key)) break;
      keys.add(key);
    }
    return this.#waiting.splice(0, count);
  }
}
