// Who a worker is (host:pid) and what becomes of the runs of workers that are gone.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { EventMap } from '../events.ts';
import type { JsonObject } from '../json.ts';
import type { RunInfo, Store } from '../store/store.ts';

export const defaultWorker = (): string => `${hostname()}:${process.pid}`;

/** A worker on this host whose process is gone: its runs crashed, no need to wait for the lease. */
export function isDeadLocalWorker(worker: string): boolean {
  const match = /^(.*):(\d+)$/.exec(worker);
  if (match === null || match[1] !== hostname()) return false;
  const pid = Number(match[2]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  return isZombie(pid);
}

/**
 * A killed process whose parent has not reaped it yet (a container whose PID 1 does not reap
 * orphans, say) still answers kill(pid, 0), but it will never run again: on Linux its state in
 * /proc is Z. Elsewhere, or when /proc cannot be read, it counts as alive and its lease decides.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * Mark the runs of dead workers crashed (their pid on this host is gone, or their lease expired),
 * freeing their shards, and log each as a run starting would: so `ckpt status`, `reset` and
 * `dlq --retry` right after a SIGKILL neither show nor refuse for a holder that no longer exists.
 */
export async function reapDeadWorkers(store: Store, instanceId: number): Promise<RunInfo[]> {
  const reaped = await store.reapCrashed(instanceId, isDeadLocalWorker);
  for (const run of reaped) {
    const { type, data } = reapedEvent(run);
    await store.appendEvents(instanceId, run.generation, [{ type, at: Date.now(), runId: run.id, shard: run.shard, data: data as unknown as JsonObject }]);
  }
  return reaped;
}

/** A reaped run is logged as crashed, or as ended by an interruption if it said so before exiting. */
export function reapedEvent(run: RunInfo): { type: 'run:crashed'; data: EventMap['run:crashed'] } | { type: 'run:end'; data: EventMap['run:end'] } {
  const processed = Math.max(run.markProcessed, run.markCeiling ?? 0);
  if (run.outcome === 'interrupted') return { type: 'run:end', data: { shard: run.shard, runId: run.id, outcome: 'interrupted', processed, position: null } };
  return { type: 'run:crashed', data: { shard: run.shard, worker: run.worker, runId: run.id, processed, ...(run.markStep ? { atMost: true } : {}) } };
}
