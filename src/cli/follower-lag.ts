import type { RunInfo } from '../store/store.ts';

/** How far a follower was behind its source's head when its heartbeat last measured it (`Source.behind`). */
export interface FollowerLag {
  shard: string;
  records: number;
  ms?: number;
  /** When it was measured (the worker's clock). */
  at: number;
}

/** The lag each running run last reported with its heartbeat (`stats.lag`), for `ckpt status` and the dashboard. */
export function followerLags(runs: readonly RunInfo[]): FollowerLag[] {
  const lags: FollowerLag[] = [];
  for (const run of runs) {
    const lag = run.stats.lag;
    if (run.outcome !== 'running' || lag === null || typeof lag !== 'object' || Array.isArray(lag) || typeof lag.records !== 'number') continue;
    lags.push({
      shard: run.shard,
      records: lag.records,
      ...(typeof lag.ms === 'number' ? { ms: lag.ms } : {}),
      at: typeof lag.at === 'number' ? lag.at : run.heartbeatAt,
    });
  }
  return lags;
}

/** Several shards' lag as one: the records summed, the longest time; null when none reported. */
export function combinedLag(lags: readonly Pick<FollowerLag, 'records' | 'ms'>[]): { records: number; ms: number | null } | null {
  if (lags.length === 0) return null;
  let ms: number | null = null;
  for (const lag of lags) if (lag.ms !== undefined) ms = Math.max(ms ?? 0, lag.ms);
  return { records: lags.reduce((sum, lag) => sum + lag.records, 0), ms };
}

/** `157 records, 2.3 s behind` (the time when the source knows it), or `0 (caught up)`. */
export function formatLag(lag: { records: number; ms: number | null }): string {
  if (lag.records === 0) return '0 (caught up)';
  const records = `${lag.records.toLocaleString('en-US')} record${lag.records === 1 ? '' : 's'}`;
  if (lag.ms === null) return records;
  const seconds = lag.ms / 1000;
  return `${records}, ${seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds / 60)} min`} behind`;
}
