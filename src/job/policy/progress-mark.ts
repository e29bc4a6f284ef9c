import type { Lease, RunInfo, Store } from '../../store/store.ts';

/** Records the first mark allows; later marks grow ×4 at most until they span one mark interval. */
const FIRST_STEP = 16;
const MAX_STEP = 10_000_000;

/**
 * The run's durable promise of how far it may get: no record past shard total `ceiling` is
 * dispatched before a higher ceiling is durable (`Store.markProgress`). So after a SIGKILL the
 * records to redo are known to be at most `ceiling` minus the checkpoint's count, and at most
 * one step more than the truth. Steps are sized to about one mark interval of work at the rate
 * seen so far, so a fast job writes about one mark per interval, not one per record.
 */
export class ProgressMarker {
  readonly #store: Store;
  readonly #lease: Lease;
  readonly #intervalMs: number;
  readonly #maxStep: number;
  readonly #start: number;
  readonly #startedAt = performance.now();
  #ceiling: number;
  #step = FIRST_STEP / 4;
  #final = false;
  /** A raise under way, started early (see needsMark) or awaited: one at a time, so ceilings only grow. */
  #raising: Promise<void> | undefined;

  /** `maxStep`: a checkpoint every N records loses at most N, so a finer bound needs steps of at most N. */
  constructor(store: Store, lease: Lease, start: number, intervalMs: number, maxStep = MAX_STEP) {
    this.#store = store;
    this.#maxStep = Math.max(1, Math.min(MAX_STEP, maxStep));
    this.#lease = lease;
    this.#start = start;
    this.#ceiling = start;
    this.#intervalMs = intervalMs;
  }

  /**
   * Whether dispatching the record that brings the shard total to `count` needs a higher mark
   * first. Within the last quarter of a step below the ceiling it starts the next mark without
   * waiting for it (the same mark a wait at the ceiling would write: `count - 1 + step`, never
   * lower than the ceiling), so the loop seldom stops dispatching for a round trip: at
   * concurrency 1 every such stop is the whole round trip added to a record.
   */
  needsMark(count: number): boolean {
    if (count > this.#ceiling) return true;
    if (this.#raising === undefined && !this.#final && this.#ceiling - count < this.#step / 4) {
      const early = this.#raise(count);
      this.#raising = early;
      // A failed early mark is only a mark not raised: the wait at the ceiling raises it again, and fails there.
      early.then(
        () => this.#done(early),
        () => this.#done(early),
      );
    }
    return false;
  }

  async raise(count: number): Promise<void> {
    while (this.#raising !== undefined) {
      await this.#raising.catch(() => undefined);
      if (!this.needsMark(count)) return;
    }
    const raising = this.#raise(count);
    this.#raising = raising;
    try {
      await raising;
    } finally {
      this.#done(raising);
    }
  }

  #done(raising: Promise<void>): void {
    if (this.#raising === raising) this.#raising = undefined;
  }

  async #raise(count: number): Promise<void> {
    // Stopped at once and exact: the process is exiting; a later, looser mark must not replace it.
    if (this.#final) return new Promise<void>(() => undefined);
    const rate = (count - this.#start) / Math.max(1, performance.now() - this.#startedAt);
    const step = Math.max(1, Math.min(this.#step * 4, this.#maxStep, Math.round(rate * this.#intervalMs)));
    const ceiling = count - 1 + step;
    // Early, at a slower rate, the new ceiling may not pass the old one: nothing to write yet.
    if (ceiling <= this.#ceiling) return;
    this.#step = step;
    await this.#store.markProgress(this.#lease, { ceiling, step });
    this.#ceiling = ceiling;
  }

  /** The exact count, for a run stopping at once on purpose: it then reads as interrupted, not crashed. */
  async final(count: number): Promise<void> {
    this.#final = true;
    // A mark under way lands first, so the exact one is the last written.
    await this.#raising?.catch(() => undefined);
    await this.#store.markProgress(this.#lease, { ceiling: count, step: 0 });
  }
}

/** Records a resuming run must redo, from the runs before it that got past its checkpoint. */
export interface Rework {
  records: number;
  /** The count is a ceiling (a crashed run's progress mark): the truth is at most one mark step less. */
  atMost: boolean;
  /** The mark step behind a ceiling: how far above the truth the count may be. */
  markStep: number;
  /** The run whose work past the checkpoint is redone. */
  fromRun: number | null;
}

/**
 * Every earlier run of the shard that got past the checkpoint lost that work, whatever ended it
 * (a crash, a second Ctrl-C, a failed chunk, a fenced commit): the furthest of them sets the
 * rework. Looking past the previous run matters: a run killed while starting did nothing, but
 * the one before it may have done thousands of records that are redone now.
 */
export function reworkAfter(earlier: RunInfo[], checkpointProcessed: number): Rework {
  let rework: Rework = { records: 0, atMost: false, markStep: 0, fromRun: null };
  for (const run of earlier) {
    const reached = reachedBy(run);
    const records = reached.processed - checkpointProcessed;
    if (records <= rework.records) continue;
    rework = { records, atMost: reached.atMost, markStep: reached.atMost ? (run.markStep ?? 0) : 0, fromRun: run.id };
  }
  return rework;
}

/** How far a run got: its exact count, or for one found dead the ceiling of its last progress mark. */
export function reachedBy(run: RunInfo, shardTotal?: number): { processed: number; atMost: boolean } {
  const marked = run.outcome === 'crashed' || (run.outcome === 'interrupted' && run.markStep === 0);
  // A shard whose size is known (it completed) bounds the ceiling: no run got past its end.
  const ceiling = Math.min(marked ? (run.markCeiling ?? 0) : 0, shardTotal ?? Number.POSITIVE_INFINITY);
  return { processed: Math.max(run.markProcessed, ceiling), atMost: ceiling > run.markProcessed && (run.markStep ?? 0) > 0 };
}

/** The size of each shard whose run completed it (instance/generation/shard → records), the bound of every earlier run's reach. */
export function completedTotals(runs: RunInfo[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const run of runs) if (run.outcome === 'completed') totals.set(shardKey(run), run.markProcessed);
  return totals;
}

export function shardKey(run: RunInfo): string {
  return `${run.instanceId}/${run.generation}/${run.shard}`;
}

/** The work a run lost: its records past the checkpoint that `next` (the shard's next run) resumed from. */
export interface LostWork {
  records: number;
  /** A bound from a crashed run's progress mark: the truth is at most `markStep` less. */
  atMost: boolean;
  markStep: number;
  byRun: number;
}

export function lostWork(run: RunInfo, next: RunInfo, shardTotal?: number): LostWork {
  const reached = reachedBy(run, shardTotal);
  return {
    records: Math.max(0, reached.processed - next.startProcessed),
    atMost: reached.atMost,
    markStep: reached.atMost ? (run.markStep ?? 0) : 0,
    byRun: next.id,
  };
}

/**
 * The work each ended run lost, by run id: its records after the checkpoint that the shard's next
 * run resumed from, exact or a bound ("at most", from its progress mark).
 */
export function lostWorkByRun(runs: RunInfo[]): Map<number, LostWork> {
  const lost = new Map<number, LostWork>();
  const byShard = new Map<string, RunInfo[]>();
  const totals = completedTotals(runs);
  for (const run of runs) {
    const key = shardKey(run);
    const list = byShard.get(key) ?? [];
    list.push(run);
    byShard.set(key, list);
  }
  for (const shardRuns of byShard.values()) {
    shardRuns.sort((a, b) => a.id - b.id);
    for (const [index, run] of shardRuns.entries()) {
      const next = shardRuns[index + 1];
      if (next !== undefined && run.outcome !== 'completed' && run.outcome !== 'running') lost.set(run.id, lostWork(run, next, totals.get(shardKey(run))));
    }
  }
  return lost;
}
