import { CheckpointedError, ExitCode, firstLine, LeaseHeldError, UsageError } from '../errors.ts';
import { type EventListener, type EventMap, type EventType, persistedEvents, type RunEvent } from '../events.ts';
import type { JsonObject } from '../json.ts';
import { lazySecretKey } from '../secret.ts';
import { retryingStore } from '../store/retrying-store.ts';
import type { InstanceInfo, Lease, RunInfo, Store, StoredPlan } from '../store/store.ts';
import type { AnyJob } from './define.ts';
import { describeHold } from './guard/hold-text.ts';
import { instanceTotal } from './guard/limits.ts';
import { FleetRateLimiter } from './guard/rate-limiter.ts';
import { recordInstanceEnd } from './instance-end.ts';
import { resolveParams } from './params.ts';
import { type CheckpointPolicy, type CheckpointSpec, checkpointPolicy } from './policy/policy.ts';
import { retryPolicy } from './policy/retry.ts';
import { checkCompletedBy, type OnDrift, RestartForDrift } from './shard/drift.ts';
import { listShardNames } from './shard/shard-names.ts';
import { runShard } from './shard/shard-run.ts';
import type { ShardResult } from './shard/shard-types.ts';
import { DEFAULT_LEASE_MS, defaultHeartbeatMs, defaultWorker, isAliveLocalWorker, isDeadLocalWorker, localNode, reapedEvent } from './workers.ts';

export interface RunOptions {
  store: Store;
  /** Raw `--param k=v` values, parsed by the job's `params`. */
  params?: { [key: string]: string };
  /** Start a new generation from the beginning, even if the instance completed (an incremental job too). */
  rerun?: boolean;
  checkpoint?: CheckpointSpec;
  concurrency?: number;
  /** Worker id recorded in runs and leases; default host:pid. */
  worker?: string;
  leaseMs?: number;
  /** How long a store call keeps retrying an unreachable store before the run fails; default 30 s. */
  storeRetryMs?: number;
  /** How often the lease is renewed and progress marked; default min(1 s, lease/3). */
  heartbeatMs?: number;
  /** How long a stop waits for records in flight before giving them up. */
  drainMs?: number;
  /** Abort to stop gracefully (the CLI wires SIGINT and SIGTERM to it). */
  signal?: AbortSignal;
  onEvent?: EventListener;
  /** Follow the source at its head instead of completing (overrides the job's `follow`). */
  follow?: boolean;
  /** When every unfinished shard is held by live workers, wait to reclaim (or see them finish) instead of refusing. */
  wait?: boolean;
  /** When a checkpoint no longer matches its inputs: stop (default), start over, or continue. */
  onDrift?: OnDrift;
  /** Where the key that seals secrets in the effect journal lives (CKPT_SECRET_KEY wins). */
  secretKeyFile?: string;
  /** `ckpt apply`: perform only the effects of this plan (of this instance and generation); hold the others. */
  plan?: StoredPlan;
}

/** `held`: a guard holds the instance (an effect limit, an approval point) until `ckpt approve` releases it. */
/**
 * `lost`: every run this process started was fenced out (its lease lapsed, a stopped or frozen
 * worker, and another worker took its shard), and the instance was completed by the others.
 */
export type RunJobOutcome = 'completed' | 'already-complete' | 'interrupted' | 'failed' | 'held' | 'lost';

export interface RunSummary {
  job: string;
  instanceId: number;
  generation: number;
  params: JsonObject;
  outcome: RunJobOutcome;
  exitCode: ExitCode;
  /** Records finished by this process. */
  records: number;
  durationMs: number;
  checkpoints: number;
  checkpointMs: number;
  /** Checkpoint time as a percentage of the run's time. */
  overheadPct: number;
  /** Records processed again because an earlier run had done them after its last checkpoint. */
  rework: number;
  /** `rework` is a bound from a crashed run's progress mark: at most that many, and no more than one mark step over. */
  reworkAtMost: boolean;
  /** Records this process sent to dead letters. */
  deadLetters: number;
  /** Effects this process completed after its lease was taken (`effect:late-completion`); absent when none. */
  lateCompletions?: number;
  /** Time spent redoing them, ms. */
  reworkMs: number;
  /** The policy in words, e.g. "auto: every ~52,000 records / 1.0 s (…)". */
  policy: string;
  /** The interval in force at the end: ms of work and records (null where the policy has none). */
  interval: { ms: number | null; records: number | null; reason: string };
  shards: ShardResult[];
  /** This run started an incremental generation where generation `from` ended; `nothingNew`: it found no record after it. */
  incremental?: { from: number; nothingNew: boolean };
  /** Outcome `lost`: this process's runs that another worker took the shard of, and why each ended. */
  lost?: { runId: number; shard: string; reason: string }[];
  error?: string;
  /** The failure's full stack, for debugging (the CLI prints it under CKPT_DEBUG=1). */
  stack?: string;
}

/** Claim → resume → process → checkpoint → complete, for every shard this process can claim. */
export async function runJob(job: AnyJob, options: RunOptions): Promise<RunSummary> {
  const started = performance.now();
  const storeRetryMs = options.storeRetryMs ?? 30_000;
  // Declared before `emit` exists; retries are reported through it once it does.
  let onRetry: (info: EventMap['store:retry']) => void = () => undefined;
  const store = retryingStore(options.store, { retryMs: storeRetryMs, onRetry: (info) => onRetry(info) });
  const worker = options.worker ?? defaultWorker();
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const heartbeatMs = options.heartbeatMs ?? defaultHeartbeatMs(leaseMs);
  const concurrency = options.concurrency ?? job.concurrency ?? 1;
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new UsageError(`concurrency must be a whole number ≥ 1 (got ${concurrency})`);
  const policySpec = options.checkpoint ?? job.checkpoint;
  let policy: ReturnType<typeof checkpointPolicy>;
  try {
    policy = checkpointPolicy(policySpec);
  } catch (error) {
    throw new UsageError(`job ${job.name}: ${firstLine(error)}`);
  }

  const { params, displayParams, paramsHash } = resolveParams(job, options.params ?? {});
  let retry: ReturnType<typeof retryPolicy>;
  try {
    retry = retryPolicy(job.retry, job.name);
  } catch (error) {
    throw new UsageError(firstLine(error), { job: job.name });
  }
  const skipLimit = job.skip?.limit ?? 0;
  if (!(Number.isInteger(skipLimit) && skipLimit >= 0)) throw new UsageError(`job ${job.name}: skip.limit must be a whole number ≥ 0`, { job: job.name });
  const onDrift = options.onDrift ?? 'fail';
  const secretKey = lazySecretKey(process.env, options.secretKeyFile);
  // Before the instance is made: a shard name no store can hold (a NUL, a lone surrogate, over
  // 512 characters) is refused up front, not after leaving an instance pending 0/0 behind.
  const shardNames = await listShardNames(job, params);
  /** The instance of these params, found or made: as it stands now in the store. */
  const currentInstance = () => store.instance(job.name, paramsHash, { params: displayParams, version: job.version ?? null });
  let instance = await currentInstance();
  // Before anything is written (a crashed run reaped, a run row): a server store's chain refuses
  // a key that is not the one it is keyed with (SQLite's was checked with the key, above).
  await store.checkChainKey(instance.id);
  if (options.plan !== undefined && (options.plan.instanceId !== instance.id || options.plan.generation !== instance.generation)) {
    throw new CheckpointedError(
      `plan ${options.plan.id} was made for ${options.plan.job} ${JSON.stringify(options.plan.params)} generation ${options.plan.generation}, ` +
        `not for ${job.name} ${JSON.stringify(displayParams)} generation ${instance.generation}; make a new plan (ckpt plan)`,
      ExitCode.refused,
      { job: job.name },
    );
  }
  const rateLimiter = job.rateLimits === undefined ? undefined : new FleetRateLimiter(store, job.rateLimits);

  /** Tells the listeners (CLI, onEvent); a listener's error is the user's, reported, never ours. */
  let lateCompletions = 0;
  const notify = <K extends EventType>(type: K, data: EventMap[K], at = Date.now()): void => {
    if (type === 'effect:late-completion') lateCompletions++;
    if (!options.onEvent) return;
    try {
      options.onEvent({ type, at, job: job.name, instanceId: instance.id, data } as RunEvent);
    } catch (error) {
      process.emitWarning(`an event listener of job ${job.name} threw: ${firstLine(error)}`);
    }
  };
  /** Tells the listeners, and appends a persisted event to the store's chained log: durable when it resolves. */
  const emit = <K extends EventType>(type: K, data: EventMap[K], runId?: number): Promise<void> => {
    const at = Date.now();
    notify(type, data, at);
    if (!persistedEvents.has(type)) return Promise.resolve();
    const shard = (data as { shard?: string }).shard ?? null;
    return store.appendEvents(instance.id, instance.generation, [{ type, at, runId: runId ?? null, shard, data: data as unknown as JsonObject }]);
  };
  /**
   * A new generation: the reset is recorded in the new generation's log, where its runs follow,
   * before the generation moves (a decision is durable before the act): a kill between the two
   * leaves a reset decided and not made, never a generation that no event explains. Two processes
   * resetting at once each record theirs; one generation starts (resetInstance is conditional).
   */
  const resetTo = async (reason: EventMap['instance:reset']['reason'], options?: { carry: boolean }) => {
    const from = instance.generation;
    // Another process that started the next generation just now (workers started together on a
    // completed incremental instance): join it, recording nothing.
    const current = await currentInstance();
    if (current.generation !== from) {
      instance = current;
      return;
    }
    const data: EventMap['instance:reset'] = { from, generation: from + 1, reason, by: worker };
    const at = Date.now();
    notify('instance:reset', data, at);
    await store.appendEvents(instance.id, from + 1, [{ type: 'instance:reset', at, runId: null, shard: null, data: { ...data } }]);
    instance = await store.resetInstance(instance.id, from, options);
  };

  onRetry = (info) => void emit('store:retry', info);
  const emitReaped = (run: RunInfo): Promise<void> => {
    const reaped = reapedEvent(run);
    return reaped.type === 'run:end' ? emit('run:end', reaped.data, run.id) : emit('run:crashed', reaped.data, run.id);
  };

  /** The generation this run's incremental generation carried its positions from. */
  let carriedFrom: number | undefined;
  const summary = (outcome: RunJobOutcome, shards: ShardResult[], error?: string): RunSummary => {
    const durationMs = performance.now() - started;
    const checkpointMs = shards.reduce((sum, shard) => sum + shard.checkpointMs, 0);
    const exitCode =
      outcome === 'failed'
        ? ExitCode.failed
        : outcome === 'interrupted'
          ? ExitCode.interrupted
          : outcome === 'held'
            ? ExitCode.held
            : outcome === 'lost'
              ? ExitCode.refused
              : ExitCode.completed;
    return {
      job: job.name,
      instanceId: instance.id,
      generation: instance.generation,
      params: displayParams,
      outcome,
      exitCode,
      records: shards.reduce((sum, shard) => sum + shard.records, 0),
      durationMs,
      checkpoints: shards.reduce((sum, shard) => sum + shard.checkpoints, 0),
      checkpointMs,
      overheadPct: durationMs > 0 ? (100 * checkpointMs) / durationMs : 0,
      rework: shards.reduce((sum, shard) => sum + shard.rework, 0),
      reworkAtMost: shards.some((shard) => shard.reworkAtMost === true),
      deadLetters: shards.reduce((sum, shard) => sum + (shard.deadLetters ?? 0), 0),
      ...(lateCompletions > 0 ? { lateCompletions } : {}),
      reworkMs: shards.reduce((sum, shard) => sum + shard.reworkMs, 0),
      policy: policy.describe(),
      interval: intervalOf(policy),
      shards,
      ...(carriedFrom === undefined
        ? {}
        : { incremental: { from: carriedFrom, nothingNew: outcome === 'completed' && shards.every((shard) => shard.records === 0) } }),
      ...(outcome === 'lost' ? { lost: lostRuns } : {}),
      ...(error === undefined ? {} : { error }),
      ...(outcome === 'failed' && shards.some((shard) => shard.stack) ? { stack: shards.find((shard) => shard.stack)?.stack } : {}),
    };
  };

  if (options.rerun) {
    // A killed process is no holder: reap it first, or --rerun right after a crash is refused in its name.
    for (const run of await store.reapCrashed(instance.id, isDeadLocalWorker, isAliveLocalWorker)) await emitReaped(run);
    await refuseIfHeld(store, job.name, instance, 'rerun');
    // Conditional: if another process started a new generation at the same moment, this run joins
    // that one (and is refused if it is already held) instead of starting yet another.
    await resetTo('rerun');
  } else if (instance.status === 'completed') {
    await checkCompletedBy({ store, job, params, instance, onDrift });
    if (!job.incremental) return summary('already-complete', []);
    // Conditional like --rerun: two runs at once start one generation, both carrying the same positions.
    const from = instance.generation;
    await resetTo('incremental', { carry: true });
    carriedFrom = from;
  }

  policy.useHistory(await store.failureHistory(instance.id));
  /** Asked at most once, by the first shard run of a job with `maxPercent` limits. */
  let instanceRecords: Promise<number | undefined> | undefined;
  await store.ensureShards(instance, shardNames, { version: job.version ?? null });

  const results: ShardResult[] = [];
  /** This process's runs that ended lost (fenced out by another worker, or cut off from the store). */
  const lostRuns: { runId: number; shard: string; reason: string }[] = [];
  /** This process's runs: they record their own ends. */
  const ownRuns = new Set<number>();
  /** When shard runs began ending on store errors with no commit since: bounds a flapping store. */
  let unavailableSince: number | undefined;
  const pollMs = Math.min(1000, Math.max(20, Math.floor(leaseMs / 4)));
  const runClaimed = (lease: Lease): Promise<ShardResult> =>
    runShard({
      job,
      params,
      store,
      lease,
      policy,
      concurrency,
      heartbeatMs,
      drainMs: options.drainMs ?? 10_000,
      signal: options.signal,
      emit,
      notify,
      paramsHash,
      onDrift,
      retry,
      skipLimit,
      secretKey,
      follow: options.follow ?? job.follow ?? false,
      ...(options.plan === undefined ? {} : { plan: options.plan }),
      ...(rateLimiter === undefined ? {} : { rateLimiter }),
      instanceTotal: () => {
        instanceRecords ??= instanceTotal(job, params, shardNames);
        return instanceRecords;
      },
    });
  for (;;) {
    if (options.signal?.aborted) return summary('interrupted', results);
    const crashed = await store.reapCrashed(instance.id, isDeadLocalWorker, isAliveLocalWorker);
    for (const run of crashed) await emitReaped(run);
    if (crashed.length > 0) policy.useHistory(await store.failureHistory(instance.id));
    // A guard holds the instance: no shard starts new work until `ckpt approve` releases it.
    // A shard whose last run died may hold an effect in doubt, counted against the limit but
    // perhaps never performed: it is resumed to settle it, and stops at its next new effect.
    const held = await openHold(store, instance);
    if (held !== undefined) {
      await settleBeforeHold(store, instance, worker, leaseMs, async (lease) => {
        ownRuns.add(lease.runId);
        results.push(await runClaimed(lease));
      });
      return summary('held', results, (await openHold(store, instance)) ?? held);
    }
    const lease = await store.claim(instance, worker, leaseMs, localNode());
    if (lease !== null) {
      ownRuns.add(lease.runId);
      let result: ShardResult;
      try {
        result = await runClaimed(lease);
      } catch (error) {
        if (!(error instanceof RestartForDrift)) throw error;
        // --on-drift restart: a new generation from the beginning (the old one's history stays).
        await refuseIfHeld(store, job.name, instance, 'restart');
        await resetTo('drift-restart');
        await store.ensureShards(instance, shardNames, { version: job.version ?? null });
        results.length = 0;
        continue;
      }
      results.push(result);
      // Lost to another worker, or to the store while stopped (its connection gone when it woke):
      // either way another worker took the shard if the others then complete the instance.
      if (result.outcome === 'lost') {
        lostRuns.push({ runId: lease.runId, shard: lease.shard, reason: result.error ?? 'the lease was taken by another worker' });
      }
      if (result.outcome === 'failed') return summary('failed', results, result.error);
      if (result.outcome === 'interrupted') return summary('interrupted', results);
      // Held: the next turn settles what other shards' dead runs left in doubt, then ends held.
      if (result.outcome === 'held') continue;
      if (result.storeUnavailable) {
        unavailableSince ??= Date.now();
        if (Date.now() - unavailableSince > storeRetryMs) {
          return summary(
            'failed',
            results,
            `the store ${store.location} kept failing for ${Math.round(storeRetryMs / 1000)} s (${result.error}); run again to resume`,
          );
        }
      } else if (result.checkpoints > 0) unavailableSince = undefined;
      continue;
    }
    const completion = await store.completeIfDone(instance.id, instance.generation);
    if (completion !== false) {
      // Only the worker that completed it records it: one completion, one instance:complete.
      if (completion === 'now') await recordInstanceEnd({ store, instance, job: job.name, ownRuns, worker, emit });
      // Woken past its lease (SIGSTOP, a frozen VM) after others finished the work: the instance is
      // complete, but not by this process, whose runs were all fenced out. Saying "completed" would
      // tell its operator the work it started was done by it; it says what happened to its runs.
      if (lostRuns.length > 0 && !results.some((result) => result.outcome === 'completed')) return summary('lost', results);
      return summary('completed', results);
    }
    // Every unfinished shard is held. Nothing done yet: another live process has this instance,
    // which is a refusal unless this worker was asked to wait (a spare worker in a fleet).
    if (results.length === 0 && !options.wait) await refuseIfHeld(store, job.name, instance, 'run');
    // Reset (or rerun) by another process while this one worked: its generation's shards will
    // never all complete, so waiting for them would never end.
    const now = (await store.listInstances(job.name)).find((candidate) => candidate.id === instance.id);
    if (now !== undefined && now.generation !== instance.generation) {
      throw new CheckpointedError(
        `${job.name} ${JSON.stringify(instance.params)} was reset to generation ${now.generation} by another process while this run worked on generation ${instance.generation} (its work stays in that generation's history); run again to work on generation ${now.generation}`,
        ExitCode.refused,
        { job: job.name },
      );
    }
    // Woken early where the store can tell a shard was freed or completed (PostgreSQL NOTIFY).
    await store.waitForChange(instance.id, pollMs, options.signal);
  }
}

/** What holds the instance's generation, said as a line (which guard, how far, what to run next), if a guard does. */
async function openHold(store: Store, instance: InstanceInfo): Promise<string | undefined> {
  const hold = (await store.holds(instance.id, instance.generation)).find((found) => found.releasedAt === null);
  return hold === undefined ? undefined : describeHold(hold);
}

/**
 * While a hold is open: claims every free shard; one whose last run ended otherwise than held,
 * completed or never (a crash, a lost lease, a failure) may have an effect in doubt, and is run
 * (`run`: it settles what is in doubt and stops at its next new effect, held); the others are
 * kept claimed meanwhile, so the claims reach every shard, then released as held.
 */
async function settleBeforeHold(store: Store, instance: InstanceInfo, worker: string, leaseMs: number, run: (lease: Lease) => Promise<void>): Promise<void> {
  const kept: Lease[] = [];
  try {
    for (
      let lease = await store.claim(instance, worker, leaseMs, localNode());
      lease !== null;
      lease = await store.claim(instance, worker, leaseMs, localNode())
    ) {
      const previous = await store.previousRun(lease);
      if (previous === undefined || previous.outcome === 'held' || previous.outcome === 'completed') kept.push(lease);
      else await run(lease);
    }
  } finally {
    for (const lease of kept) await store.release(lease, 'held', { processed: 0 }).catch(() => undefined);
  }
}

async function refuseIfHeld(store: Store, job: string, instance: InstanceInfo, what: string): Promise<void> {
  const holders = await store.holders(instance.id);
  const first = holders[0];
  if (first === undefined) return;
  const who = [...new Set(holders.map((holder) => holder.worker))].join(', ');
  const shards = holders.length === 1 ? `shard ${first.shard}` : `${holders.length} shards`;
  throw new LeaseHeldError(
    `cannot ${what} ${job} ${JSON.stringify(instance.params)}: ${shards} held by live worker ${who} (lease until ${new Date(first.expiresAt).toISOString()}); wait for it to finish or stop it`,
    first.worker,
    { job, shard: first.shard },
  );
}

function intervalOf(policy: CheckpointPolicy): RunSummary['interval'] {
  const chosen = policy.interval();
  return { ms: Number.isFinite(chosen.ms) ? chosen.ms : null, records: chosen.records ?? null, reason: chosen.reason };
}

export { CheckpointedError };
