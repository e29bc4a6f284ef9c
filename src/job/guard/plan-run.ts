import { CheckpointedError, ExitCode, firstLine } from '../../errors.ts';
import type { EventListener } from '../../events.ts';
import { type JsonObject, sha256 } from '../../json.ts';
import { lazySecretKey } from '../../secret.ts';
import type { NewPlan, PlannedEffect, Store, StoredPlan } from '../../store/store.ts';
import { describeJobError } from '../code-location.ts';
import { type AnyJob, jobFileOf } from '../define.ts';
import { beginOutsideRun } from '../effects/outside-run.ts';
import { resolveParams } from '../params.ts';
import { eventLogger, RecordContext } from '../record/context.ts';
import { listShardNames } from '../shard/shard-names.ts';
import { Baton } from '../tx/baton.ts';
import { RecordTx } from '../tx/record-tx.ts';
import type { EffectGuard } from './effect-guard.ts';

export interface PlanOptions {
  store: Store;
  params?: { [key: string]: string };
  /** The job file as the user gave it: stored with the plan, so `ckpt apply` can load it. */
  jobFile: string;
  onEvent?: EventListener;
  /** Stops the plan run (SIGINT/SIGTERM): nothing is stored. */
  signal?: AbortSignal;
}

/** Records each effect a plan run asks for; `ctx.once` then returns undefined and `fn` never runs. */
class PlanRecorder implements EffectGuard {
  readonly recordsOnly = true;
  readonly effects: PlannedEffect[] = [];
  async admit(effect: PlannedEffect): Promise<'recorded'> {
    this.effects.push(effect);
    return 'recorded';
  }
}

/** Failures a plan keeps the text of; the rest are counted. */
const KEPT_FAILURES = 5;

/**
 * `ckpt plan`: runs every shard of the instance from the beginning of its source with each
 * `ctx.once` / `ctx.step` recorded, not performed: reads run, `ctx.tx` runs in a transaction that
 * is rolled back at the end of each shard, no checkpoint, run, lease or effect is written. The
 * effects found, in order, make the plan, stored with its counts by kind and its hash.
 */
export async function planJob(job: AnyJob, options: PlanOptions): Promise<StoredPlan> {
  const { store } = options;
  const { params, displayParams, paramsHash } = resolveParams(job, options.params ?? {});
  // Shard names first: one no store can hold is refused before an instance is made for it.
  const shardNames = await listShardNames(job, params);
  const instance = await store.instance(job.name, paramsHash, { params: displayParams, version: job.version ?? null });
  const shards = await store.ensureShards(instance, shardNames, { version: job.version ?? null });
  const recorder = new PlanRecorder();
  const failures: NewPlan['failures'] = [];
  let failed = 0;
  let records = 0;
  const stop = new AbortController();
  if (options.signal?.aborted) stop.abort();
  options.signal?.addEventListener('abort', () => stop.abort(), { once: true });
  const secretKey = lazySecretKey(process.env, undefined);
  for (const shard of shards) {
    if (stop.signal.aborted) throw planInterrupted(job.name);
    const { lease, tx, chunk, effects } = await beginOutsideRun({
      store,
      instance,
      shard,
      job: job.name,
      worker: 'plan',
      secretKey,
      notify: () => undefined,
      guard: recorder,
    });
    const baton = new Baton();
    const state = structuredClone(job.initialState?.({ params, shard: shard.name }) ?? {}) as JsonObject;
    const log = eventLogger(shard.name, (data) => options.onEvent?.({ type: 'log', at: Date.now(), job: job.name, instanceId: instance.id, data }));
    try {
      const source = await job.source({ params, shard: shard.name });
      for await (const item of source.read(undefined, { signal: stop.signal })) {
        records++;
        let recordTx: RecordTx | undefined;
        try {
          if (item.error) throw item.error;
          const ctx = new RecordContext({
            job: job.name,
            params,
            shard: shard.name,
            fencingToken: lease.token,
            position: item.position,
            state,
            signal: stop.signal,
            log,
            sql: () => {
              if (tx.sql === undefined) return undefined;
              recordTx = new RecordTx(baton, chunk, tx.sql, false);
              return recordTx;
            },
            effects,
          });
          await job.process(item.record, ctx);
          await ctx.durable();
          if (recordTx !== undefined) await recordTx.finish(true);
        } catch (error) {
          if (recordTx !== undefined) await recordTx.finish(false).catch(() => undefined);
          failed++;
          if (failures.length < KEPT_FAILURES) {
            failures.push({ shard: shard.name, position: JSON.stringify(item.position) ?? 'null', error: firstLine(describeJobError(error, jobFileOf(job))) });
          }
        }
      }
    } finally {
      chunk.buffer.clear();
      await store.rollback(tx);
    }
  }
  // A stop during the last shard ends its read early, not with a throw: without this check the
  // plan of the records read so far was stored and printed as the whole plan (exit 0).
  if (stop.signal.aborted) throw planInterrupted(job.name);
  const counts: { [kind: string]: number } = {};
  for (const effect of recorder.effects) counts[effect.kind] = (counts[effect.kind] ?? 0) + 1;
  const hash = sha256(
    JSON.stringify([
      job.name,
      paramsHash,
      instance.generation,
      recorder.effects.map((effect) => [effect.shard, effect.kind, effect.scope, effect.key, effect.target]),
    ]),
  );
  return store.savePlan({
    instanceId: instance.id,
    job: job.name,
    params: displayParams,
    paramsHash,
    generation: instance.generation,
    jobFile: options.jobFile,
    effects: recorder.effects,
    counts,
    records,
    failures,
    failed,
    hash,
    approvalsRequired: job.plan?.approvals ?? 0,
  });
}

/** A plan stopped by SIGINT/SIGTERM stores nothing: a part of it would read as the whole. Exit 3. */
function planInterrupted(job: string): CheckpointedError {
  return new CheckpointedError('the plan run was interrupted before it read every shard; nothing was stored: run ckpt plan again', ExitCode.interrupted, {
    job,
  });
}
