import type { JournalFence, JournalOutcome, JournalWrite, Store } from '../../store/store.ts';

/** Writes in one batch at most: bounds a statement's size and a batch's commit time. */
const MAX_BATCH = 500;
/** How long deferred writes wait for a write someone waits on before they go alone. */
export const HOLD_MS = 5;

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
 * queued before it is (batches are sequential, and a failed one refuses the writes behind it). A batch holds no key twice (a key's second
 * write waits for the next batch), so the writes of a batch never depend on each other's order.
 * A batch of deferred writes only (completions a record waits for before it counts, while its
 * code has moved on) waits for a write someone waits on, `HOLD_MS` at most: between a record and
 * the next the record loop lets timers in and may raise its progress mark (a round trip), so at
 * concurrency 1 a record's last completion would otherwise go alone, one commit ahead of the
 * next record's first intent, which would wait for it. The hold widens the window in which a
 * crash leaves that effect in doubt (settled by `verify`) by as much, never more.
 */
export class JournalQueue {
  readonly #store: Pick<Store, 'journal'>;
  readonly #instanceId: number;
  /** The lease every batch is written under (EffectJournal.journal), if any. */
  readonly #fence: JournalFence | undefined;
  #waiting: Waiting[] = [];
  #busy = false;
  #scheduled = false;
  /** Deferred writes only are waiting, held until a write someone waits on joins them or HOLD_MS passes. */
  #hold: NodeJS.Timeout | undefined;
  /** The waiting writes have been held their HOLD_MS: they go at the next turn, whatever joins them. */
  #held = false;

  readonly #holdMs: number;

  constructor(store: Pick<Store, 'journal'>, instanceId: number, fence?: JournalFence, holdMs = HOLD_MS) {
    this.#store = store;
    this.#instanceId = instanceId;
    this.#fence = fence;
    this.#holdMs = holdMs;
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

  #schedule(): void {
    if (this.#busy || this.#scheduled || this.#hold !== undefined || this.#waiting.length === 0) return;
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
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#busy) return;
    const batch = this.#take();
    if (batch.length === 0) return;
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
