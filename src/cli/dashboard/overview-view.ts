import { combinedLag } from '../follower-lag.ts';
import { redactJson, redactText } from './redact.ts';
import type { Overview } from './store-reader.ts';

export type InstanceState = 'running' | 'stalled' | 'completed' | 'resumable' | 'pending' | 'held';

/** The JSON behind the list of instances: one line each, newest first. */
export function overviewView(overview: Overview, isDeadWorker: (worker: string, node: string | null) => boolean) {
  return {
    now: overview.readAt,
    store: redactText(overview.location),
    older: overview.older,
    instances: overview.statuses.map((status) => {
      const workers = new Map<string, { worker: string; shards: number; dead: boolean }>();
      for (const holder of status.holders) {
        const entry = workers.get(holder.worker) ?? { worker: holder.worker, shards: 0, dead: isDeadWorker(holder.worker, holder.node) };
        entry.shards++;
        workers.set(holder.worker, entry);
      }
      const live = [...workers.values()].some((worker) => !worker.dead);
      // Shards marked running with no live holder: their workers died and nobody has reaped them yet.
      const held = overview.holds.get(status.instance.id);
      const state: InstanceState =
        held !== undefined
          ? 'held'
          : status.instance.status === 'completed'
            ? 'completed'
            : live
              ? 'running'
              : status.shards.running > 0
                ? 'stalled'
                : status.processed > 0 || status.shards.completed > 0
                  ? 'resumable'
                  : 'pending';
      return {
        id: status.instance.id,
        job: status.instance.job,
        params: redactJson(status.instance.params),
        generation: status.instance.generation,
        state,
        shards: status.shards,
        processed: status.processed,
        lastCheckpointAt: status.lastCheckpointAt,
        workers: [...workers.values()],
        /** How far its followers are behind their sources' heads (records summed, the longest time); null when none reports it. */
        lag: live ? combinedLag(overview.lags.get(status.instance.id) ?? []) : null,
        /** Which guard holds it, how far, the approvals so far, what to run next (held instances only). */
        holds: held === undefined ? [] : held.map((text) => redactText(text)),
      };
    }),
  };
}
