import { DriftError } from '../errors.ts';
import type { Source } from '../source/source.ts';
import type { Lease, ShardInputs, Store } from '../store/store.ts';
import type { Emit } from './record-run.ts';

/** What to do when a checkpoint no longer matches its inputs. */
export type OnDrift = 'fail' | 'restart' | 'resume';

/** Thrown by a shard run to ask the runner for a new generation (`--on-drift restart`). */
export class RestartForDrift extends Error {}

/**
 * Compare the inputs a shard's checkpoint was made from (params hash, job version, source
 * fingerprint) with today's; a resume from a checkpoint over other data would skip or repeat
 * records silently, so a change stops the run unless the operator chose otherwise.
 */
export async function checkDrift(input: {
  store: Store;
  lease: Lease;
  job: string;
  version: string | null;
  paramsHash: string;
  source: Source<unknown, unknown>;
  resuming: boolean;
  /** The checkpoint was carried from the last generation (incremental): the source may have grown since, and says if it only grew. */
  carried?: { position: unknown } | undefined;
  onDrift: OnDrift;
  emit: Emit;
}): Promise<void> {
  const { store, lease } = input;
  const fingerprint = input.source.fingerprint ? await input.source.fingerprint() : null;
  const inputs: ShardInputs = { fingerprint, version: input.version, paramsHash: input.paramsHash };
  if (input.resuming) {
    const shard = (await store.listShards(lease.instanceId)).find((row) => row.id === lease.shardId);
    const changes: string[] = [];
    if (shard?.paramsHash != null && shard.paramsHash !== inputs.paramsHash) {
      changes.push(`params changed (hash ${shard.paramsHash.slice(0, 12)} → ${inputs.paramsHash.slice(0, 12)})`);
    }
    if (shard !== undefined && (shard.version ?? null) !== inputs.version) {
      changes.push(`job version changed from ${shard.version ?? '(none)'} to ${inputs.version ?? '(none)'}`);
    }
    if (shard?.fingerprint != null && shard.fingerprint !== inputs.fingerprint) {
      const { carried, source } = input;
      if (carried === undefined || source.continues === undefined) {
        changes.push(`source changed: fingerprint ${shard.fingerprint} is now ${inputs.fingerprint ?? '(none)'}`);
      } else if (!(await source.continues(shard.fingerprint, carried.position))) {
        changes.push(
          `source was rewritten, not added to, since the last generation ended: fingerprint ${shard.fingerprint} is now ${inputs.fingerprint ?? '(none)'}`,
        );
      }
    }
    if (changes.length > 0) {
      await input.emit('drift', { shard: lease.shard, changes, resolution: input.onDrift }, lease.runId);
      if (input.onDrift === 'fail') {
        throw new DriftError(
          `job ${input.job} shard ${lease.shard} no longer matches its checkpoint: ${changes.join('; ')}. ` +
            'Run with --on-drift restart to start over, or --on-drift resume to continue from the checkpoint anyway',
          changes,
          { job: input.job, shard: lease.shard },
        );
      }
      if (input.onDrift === 'restart') throw new RestartForDrift(changes.join('; '));
    }
  }
  await store.setInputs(lease, inputs);
}
