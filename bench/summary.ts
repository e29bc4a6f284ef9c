// Summaries of samples (times in ms, batch sizes), shared by the journal's timings and the commit floor.

export interface Summary {
  n: number;
  mean: number;
  median: number;
  p90: number;
}

/** The value at quantile `q` (0–1) of `sorted`, nearest rank. */
const at = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;

export function summarise(samples: readonly number[]): Summary {
  const sorted = samples.filter(Number.isFinite).sort((a, b) => a - b);
  const mean = sorted.length === 0 ? Number.NaN : sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return { n: sorted.length, mean: round(mean), median: round(at(sorted, 0.5)), p90: round(at(sorted, 0.9)) };
}

const round = (value: number) => Math.round(value * 1000) / 1000;
