// Times the effect journal's group commits inside one (e) run without changing what they do: each
// `store.journal` call (one batch: one transaction, one commit) and, for each write a record waits
// on before its `fn` starts (a claim or an intent), the time from entering the queue to its batch
// being durable. The hooks cost two clock reads a write, against the run's 10 ms calls.
import { JournalQueue } from '../src/job/effects/journal-queue.ts';
import { ComposedStore } from '../src/store/composed-store.ts';
import { type Summary, summarise } from './summary.ts';

export interface JournalTiming {
  /** A batch end to end, as the queue waits for it (B). */
  batchMs: Summary;
  /** Writes per batch (events-only writes included). */
  batchSize: Summary;
  /** What a record waits for each of its intents: the batch in flight, then its own. */
  intentWaitMs: Summary;
}

type Journal = ComposedStore['journal'];

/** Wraps every journal batch of this process (one `store.journal` call, `writes` writes) in `around`, which must call `batch` once. */
export function aroundJournal(around: (writes: number, batch: () => ReturnType<Journal>) => ReturnType<Journal>): void {
  const journal = ComposedStore.prototype.journal;
  ComposedStore.prototype.journal = function (this: ComposedStore, ...args: Parameters<Journal>) {
    return around(args[1].length, () => journal.apply(this, args));
  };
}

/** Starts timing every journal batch of this process (call it once a process); the returned function summarises them. */
export function timeJournal(): () => JournalTiming {
  const batchMs: number[] = [];
  const batchSize: number[] = [];
  const waits: number[] = [];
  aroundJournal(async (writes, batch) => {
    const started = performance.now();
    try {
      return await batch();
    } finally {
      batchMs.push(performance.now() - started);
      batchSize.push(writes);
    }
  });
  const write = JournalQueue.prototype.write;
  JournalQueue.prototype.write = function (this: JournalQueue, entry: Parameters<typeof write>[0], options: Parameters<typeof write>[1] = {}) {
    const started = performance.now();
    const promise = write.call(this, entry, options);
    if (options.deferred !== true && (entry.kind === 'claim' || entry.kind === 'intent'))
      promise.then(
        () => waits.push(performance.now() - started),
        () => undefined,
      );
    return promise;
  };
  return () => ({ batchMs: summarise(batchMs), batchSize: summarise(batchSize), intentWaitMs: summarise(waits) });
}
