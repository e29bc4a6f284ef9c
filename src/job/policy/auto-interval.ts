import type { FailureHistory } from '../../store/store.ts';

/** Bounds of the `auto` checkpoint policy, all optional. */
export interface AutoBounds {
  /** Checkpoint time as a share of the run, e.g. 0.01 = 1 %. Default 0.01. */
  maxOverhead?: number;
  /** Most work (ms) a crash may throw away. Default 5000. */
  maxReworkMs?: number;
  /** Mean time between failures; default: estimated from the instance's run history. */
  mtbfMs?: number;
}

export const defaultMaxOverhead = 0.01;
export const defaultMaxReworkMs = 5000;
/** The MTBF we assume before any history: one crash per hour of running. */
export const priorMtbfMs = 3_600_000;

/** What bound chose the interval; 'rework-over-overhead' = both could not hold and rework won. */
export type IntervalReason = 'fixed' | 'warmup' | 'young' | 'overhead' | 'rework' | 'rework-over-overhead';

export interface IntervalChoice {
  /** Work between checkpoints, in ms. */
  ms: number;
  /** The same interval in records at the measured rate (undefined until a rate is measured). */
  records: number | undefined;
  reason: IntervalReason;
  /** Expected checkpoint overhead at this interval, C / (τ + C), as a share. */
  overhead: number;
}

export interface IntervalInput {
  /** Cost of one checkpoint (drain + commit), ms. */
  checkpointMs: number;
  /** Records per ms of work. */
  recordsPerMs: number;
  mtbfMs: number;
  maxOverhead: number;
  maxReworkMs: number;
}

/**
 * Young's first-order optimum τ = √(2·C·M), clamped: τ ≥ C·(1−o)/o keeps C/(τ+C) ≤ o, and
 * τ ≤ maxReworkMs keeps the work a crash loses within the bound. When the overhead floor is above
 * the rework ceiling, the rework bound wins: losing bounded work is the promise we make.
 */
export function chooseInterval(input: IntervalInput): IntervalChoice {
  const cost = Math.max(0, input.checkpointMs);
  const young = Math.sqrt(2 * cost * input.mtbfMs);
  const overheadFloor = (cost * (1 - input.maxOverhead)) / input.maxOverhead;
  const reworkCeiling = input.maxReworkMs;
  let ms: number;
  let reason: IntervalReason;
  if (overheadFloor > reworkCeiling) {
    ms = reworkCeiling;
    reason = 'rework-over-overhead';
  } else if (young > reworkCeiling) {
    ms = reworkCeiling;
    reason = 'rework';
  } else if (young < overheadFloor) {
    ms = overheadFloor;
    reason = 'overhead';
  } else {
    ms = young;
    reason = 'young';
  }
  // A zero-cost checkpoint makes every bound 0: checkpoint after every ms of work, not in a busy loop.
  ms = Math.max(ms, Math.min(1, reworkCeiling));
  const records = input.recordsPerMs > 0 ? Math.max(1, Math.floor(ms * input.recordsPerMs)) : undefined;
  return { ms, records, reason, overhead: ms + cost > 0 ? cost / (ms + cost) : 0 };
}

/**
 * MTBF from history, shrunk toward the prior: the prior counts as one hour of running with one
 * crash, so a young instance starts at one hour and the estimate follows the evidence as it grows.
 */
export function estimateMtbf(history: FailureHistory | undefined): number {
  const runningMs = Math.max(0, history?.runningMs ?? 0);
  const crashed = Math.max(0, history?.crashed ?? 0);
  return (runningMs + priorMtbfMs) / (crashed + 1);
}

/** An exponentially weighted moving average; the first sample is taken as is. */
export class MovingAverage {
  #value: number | undefined;
  readonly #weight: number;
  constructor(weight = 0.25) {
    this.#weight = weight;
  }
  add(sample: number): void {
    if (!Number.isFinite(sample)) return;
    this.#value = this.#value === undefined ? sample : this.#value + this.#weight * (sample - this.#value);
  }
  get value(): number | undefined {
    return this.#value;
  }
}
