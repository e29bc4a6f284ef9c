import { formatCount } from '../../count.ts';
import type { FailureHistory } from '../../store/store.ts';
import { type AutoBounds, chooseInterval, defaultMaxOverhead, defaultMaxReworkMs, estimateMtbf, type IntervalChoice, MovingAverage } from './auto-interval.ts';

/**
 * How often a shard checkpoints: every N records, every T ms of work, or `'auto'` (the default):
 * an interval chosen from the measured checkpoint cost, record rate and failure history.
 */
export type CheckpointSpec = { every: number } | { everyMs: number } | 'auto' | { auto: AutoBounds };

export const defaultCheckpointSpec: CheckpointSpec = 'auto';

/** One checkpoint's measurements, fed back to the policy after each interval boundary. */
export interface CheckpointSample {
  /** Records finished since the previous checkpoint. */
  records: number;
  /** Time spent on them, ms (from the previous checkpoint's end to this one's start). */
  workMs: number;
  /** This checkpoint's cost: drain of records in flight plus the commit, ms. */
  checkpointMs: number;
}

export interface CheckpointPolicy {
  readonly spec: CheckpointSpec;
  /** Is a checkpoint due after `records` records and `elapsedMs` since the last one? */
  due(records: number, elapsedMs: number): boolean;
  /** Learn from one checkpoint (auto uses it; fixed policies ignore it). */
  observe(sample: CheckpointSample): void;
  /** Learn the instance's failure history before the first record (auto uses it). */
  useHistory(history: FailureHistory): void;
  /** The interval in force now. */
  interval(): IntervalChoice;
  /** One line for summaries: "every 1000 records", "auto: ~52,000 records / 1.0 s (young)". */
  describe(): string;
}

export function validateCheckpointSpec(spec: unknown): CheckpointSpec {
  if (spec === 'auto') return spec;
  if (spec !== null && typeof spec === 'object') {
    const keys = Object.keys(spec);
    const { every, everyMs, auto } = spec as { every?: unknown; everyMs?: unknown; auto?: unknown };
    if (keys.length === 1 && every !== undefined && Number.isInteger(every) && (every as number) >= 1) return { every: every as number };
    if (keys.length === 1 && everyMs !== undefined && typeof everyMs === 'number' && everyMs > 0) return { everyMs };
    if (keys.length === 1 && auto !== undefined) return { auto: validateAutoBounds(auto) };
  }
  throw new TypeError(
    `checkpoint must be 'auto', { auto: { maxOverhead, maxReworkMs, mtbfMs } }, { every: N } (a whole number ≥ 1) or { everyMs: T } (ms > 0); got ${JSON.stringify(spec)}`,
  );
}

function validateAutoBounds(auto: unknown): AutoBounds {
  if (auto === null || typeof auto !== 'object') throw new TypeError(`checkpoint.auto must be an object; got ${JSON.stringify(auto)}`);
  const { maxOverhead, maxReworkMs, mtbfMs, ...rest } = auto as { [key: string]: unknown };
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new TypeError(`checkpoint.auto has unknown keys ${unknown.join(', ')}; known: maxOverhead, maxReworkMs, mtbfMs`);
  const positive = (name: string, value: unknown, max = Number.POSITIVE_INFINITY) => {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !(value > 0) || !(value <= max))
      throw new TypeError(`checkpoint.auto.${name} must be a number in (0, ${max}]; got ${value}`);
    return value;
  };
  const bounds: AutoBounds = {};
  const overhead = positive('maxOverhead', maxOverhead, 1);
  const rework = positive('maxReworkMs', maxReworkMs);
  const mtbf = positive('mtbfMs', mtbfMs);
  if (overhead !== undefined) bounds.maxOverhead = overhead;
  if (rework !== undefined) bounds.maxReworkMs = rework;
  if (mtbf !== undefined) bounds.mtbfMs = mtbf;
  return bounds;
}

export function checkpointPolicy(spec: CheckpointSpec = defaultCheckpointSpec): CheckpointPolicy {
  const valid = validateCheckpointSpec(spec);
  if (valid === 'auto') return new AutoPolicy(valid, {});
  if ('auto' in valid) return new AutoPolicy(valid, valid.auto);
  const ignore = () => undefined;
  if ('every' in valid) {
    const interval: IntervalChoice = { ms: Number.NaN, records: valid.every, reason: 'fixed', overhead: Number.NaN };
    return {
      spec: valid,
      due: (records) => records >= valid.every,
      observe: ignore,
      useHistory: ignore,
      interval: () => interval,
      describe: () => `every ${valid.every} records`,
    };
  }
  const interval: IntervalChoice = { ms: valid.everyMs, records: undefined, reason: 'fixed', overhead: Number.NaN };
  return {
    spec: valid,
    due: (records, elapsedMs) => records > 0 && elapsedMs >= valid.everyMs,
    observe: ignore,
    useHistory: ignore,
    interval: () => interval,
    describe: () => `every ${valid.everyMs} ms`,
  };
}

/**
 * Until a checkpoint has been measured, its cost is assumed to be this (a local SQLite commit
 * with fsync): the first interval is then Young's for that cost, within the rework bound, and a
 * short job is not made to checkpoint early just to learn a number it will never use.
 */
const ASSUMED_COST_MS = 1;

/**
 * The interval is time-based (due when τ ms of work have passed), so a slowdown in the record
 * rate never stretches the work at risk past maxReworkMs; the record count is reported beside it.
 */
class AutoPolicy implements CheckpointPolicy {
  readonly spec: CheckpointSpec;
  readonly #maxOverhead: number;
  readonly #maxReworkMs: number;
  readonly #fixedMtbf: number | undefined;
  #mtbfMs: number;
  readonly #cost = new MovingAverage();
  readonly #rate = new MovingAverage();
  #current: IntervalChoice;
  #history: FailureHistory | undefined;

  constructor(spec: CheckpointSpec, bounds: AutoBounds) {
    this.spec = spec;
    this.#maxOverhead = bounds.maxOverhead ?? defaultMaxOverhead;
    this.#maxReworkMs = bounds.maxReworkMs ?? defaultMaxReworkMs;
    this.#fixedMtbf = bounds.mtbfMs;
    this.#mtbfMs = bounds.mtbfMs ?? estimateMtbf(undefined);
    this.#current = this.#choose();
  }

  due(records: number, elapsedMs: number): boolean {
    return records > 0 && elapsedMs >= this.#current.ms;
  }

  observe(sample: CheckpointSample): void {
    this.#cost.add(sample.checkpointMs);
    if (sample.workMs > 0 && sample.records > 0) this.#rate.add(sample.records / sample.workMs);
    this.#current = this.#choose();
  }

  useHistory(history: FailureHistory): void {
    this.#history = history;
    if (this.#fixedMtbf === undefined) this.#mtbfMs = estimateMtbf(history);
    this.#current = this.#choose();
  }

  #choose(): IntervalChoice {
    const chosen = chooseInterval({
      checkpointMs: this.#cost.value ?? ASSUMED_COST_MS,
      recordsPerMs: this.#rate.value ?? 0,
      mtbfMs: this.#mtbfMs,
      maxOverhead: this.#maxOverhead,
      maxReworkMs: this.#maxReworkMs,
    });
    return this.#cost.value === undefined ? { ...chosen, reason: 'warmup' } : chosen;
  }

  interval(): IntervalChoice {
    return this.#current;
  }

  describe(): string {
    const { ms, records, reason, overhead } = this.#current;
    const every = `${records === undefined ? '' : `~${formatCount(records)} records / `}${formatInterval(ms)}`;
    const why =
      reason === 'rework-over-overhead'
        ? `capped so a crash loses at most ${formatInterval(this.#maxReworkMs)} of work, although checkpoints then take ~${pct(overhead)} of the run, over the ${pct(this.#maxOverhead)} target`
        : reason === 'young'
          ? `balances each checkpoint's measured cost, ${this.#cost.value?.toFixed(2)} ms, against the work a crash would lose, ${this.#crashWords()}`
          : reason === 'overhead'
            ? `lengthened so checkpoints take at most ${pct(this.#maxOverhead)} of the run`
            : reason === 'rework'
              ? `capped so a crash loses at most ${formatInterval(this.#maxReworkMs)} of work`
              : `a first guess: no checkpoint timed yet, so one is assumed to take ${ASSUMED_COST_MS} ms; ${this.#crashWords()}`;
    return `auto: every ${every} (${why})`;
  }

  /** How often a crash is expected, and where that number comes from. */
  #crashWords(): string {
    const every = `expecting a crash every ${formatInterval(this.#mtbfMs)}`;
    if (this.#fixedMtbf !== undefined) return `${every} (mtbfMs)`;
    const crashed = this.#history?.crashed ?? 0;
    if (crashed === 0) return `${every} (no crash seen yet; one an hour is assumed until history says otherwise)`;
    return `${every} (${crashed} crash${crashed === 1 ? '' : 'es'} in ${formatInterval(this.#history?.runningMs ?? 0)} of running, plus one assumed per hour)`;
  }
}

const pct = (share: number) => `${(100 * share).toFixed(share < 0.001 ? 3 : 2)} %`;
function formatInterval(ms: number): string {
  if (ms >= 7_200_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  if (ms >= 120_000) return `${(ms / 60_000).toFixed(0)} min`;
  if (ms >= 10_000) return `${(ms / 1000).toFixed(0)} s`;
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`;
}
