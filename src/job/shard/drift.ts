import { DriftError } from '../../errors.ts';
import type { Source } from '../../source/source.ts';
import type { InstanceInfo, Lease, ShardInputs, Store } from '../../store/store.ts';
import type { AnyJob } from '../define.ts';
import type { Emit } from '../record/record-run.ts';
import { type CodeIdentity, codeChanges, codeIdentity, codeText } from './job-identity.ts';

/** What to do when a checkpoint no longer matches its inputs. */
export type OnDrift = 'fail' | 'restart' | 'resume';

/** Thrown by a shard run to ask the runner for a new generation (`--on-drift restart`). */
export class RestartForDrift extends Error {}

/**
 * Compare the inputs a shard's checkpoint was made from (params hash, job version, the job's code
 * identity, source fingerprint) with today's; a resume from a checkpoint over other data would skip or repeat
 * records silently, so a change stops the run unless the operator chose otherwise.
 */
export async function checkDrift(input: {
  store: Store;
  lease: Lease;
  job: string;
  version: string | null;
  paramsHash: string;
  code: CodeIdentity;
  source: Source<unknown, unknown>;
  resuming: boolean;
  /** The checkpoint was carried from the last generation (incremental): the source may have grown since, and says if it only grew. */
  carried?: { position: unknown } | undefined;
  onDrift: OnDrift;
  /** The job has a `migrate` hook: a new version (and the code changes that come with it) is an upgrade, not drift. */
  migrates: boolean;
  emit: Emit;
}): Promise<{ migrateFrom: string | null } | undefined> {
  const { store, lease } = input;
  let migrateFrom: { migrateFrom: string | null } | undefined;
  const fingerprint = input.source.fingerprint ? await input.source.fingerprint() : null;
  const inputs: ShardInputs = { fingerprint, version: input.version, paramsHash: input.paramsHash, code: codeText(input.code) };
  if (input.resuming) {
    const shard = (await store.listShards(lease.instanceId)).find((row) => row.id === lease.shardId);
    const changes: string[] = [];
    if (shard?.paramsHash != null && shard.paramsHash !== inputs.paramsHash) {
      changes.push(`params changed (hash ${shard.paramsHash.slice(0, 12)} → ${inputs.paramsHash.slice(0, 12)})`);
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
    const upgrade: string[] = [];
    if (shard !== undefined && (shard.version ?? null) !== inputs.version) {
      upgrade.push(`job version changed from ${shard.version ?? '(none)'} to ${inputs.version ?? '(none)'}`);
    }
    // Another job file of the same name, or this one with another state: not the code that made the checkpoint.
    if (shard !== undefined) upgrade.push(...codeChanges(shard.code, input.code));
    const versionChanged = shard !== undefined && (shard.version ?? null) !== inputs.version;
    if (versionChanged && input.migrates && changes.length === 0) {
      // The job says how to carry its state over from the version that made the checkpoint.
      await input.emit('drift', { shard: lease.shard, changes: upgrade, resolution: 'migrate', fromVersion: shard.version ?? null }, lease.runId);
      migrateFrom = { migrateFrom: shard.version ?? null };
    } else changes.push(...upgrade);
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
  return migrateFrom;
}

/**
 * A completed instance answers "already complete" only to the code that completed it: another job
 * file of the same name and params (or this one with another state) is refused, or it would
 * take the other job's work for its own.
 */
export async function checkCompletedBy(input: { store: Store; job: AnyJob; params: unknown; instance: InstanceInfo; onDrift: OnDrift }): Promise<void> {
  if (input.onDrift !== 'fail') return;
  const { job, instance } = input;
  const changes = new Set<string>();
  for (const shard of await input.store.listShards(instance.id)) {
    // Completed by an earlier version of this job, which says how its state carries over.
    if (job.migrate !== undefined && (shard.version ?? null) !== (job.version ?? null)) continue;
    for (const change of codeChanges(shard.code, codeIdentity(job, input.params, shard.name))) changes.add(change);
  }
  if (changes.size === 0) return;
  const list = [...changes];
  throw new DriftError(
    `job ${job.name} ${JSON.stringify(instance.params)} was completed by other code: ${list.join('; ')}. ` +
      'Run with --rerun to run this job from the start, or --on-drift resume to accept it as complete',
    list,
    { job: job.name },
  );
}
