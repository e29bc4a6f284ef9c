import { CorruptCheckpointError, DriftError, FencedError, UsageError } from '../../errors.ts';
import type { JsonObject, JsonValue } from '../../json.ts';
import { openCursor } from '../../source/cursor.ts';
import { isTransientStoreError } from '../../store/transient.ts';
import { describeJobError } from '../code-location.ts';
import { jobFileOf } from '../define.ts';
import { Effects } from '../effects/effects.ts';
import { effectGuards, limitsShareOfInstance } from '../guard/limits.ts';
import { PlanApplyGuard } from '../guard/plan-apply.ts';
import { ProgressMarker, reworkAfter } from '../policy/progress-mark.ts';
import { CheckpointBoundary } from '../record/checkpoint-boundary.ts';
import { eventLogger } from '../record/context.ts';
import { RecordLoop } from '../record/record-loop.ts';
import type { Emit } from '../record/record-run.ts';
import { Baton } from '../tx/baton.ts';
import { checkDrift, RestartForDrift } from './drift.ts';
import { codeIdentity } from './job-identity.ts';
import { ReworkClock } from './rework-clock.ts';
import { runSetup } from './setup.ts';
import { endShard } from './shard-end.ts';
import type { ShardResult, ShardRunInput } from './shard-types.ts';
import { onStopAtOnce } from './stop-at-once.ts';

const PROGRESS_EVERY_MS = 200;
/** How often a follower asks its source how far behind the head it is (a round trip to the server). */
const LAG_EVERY_MS = 1000;

/**
 * Processes one claimed shard until its source is exhausted, the run is stopped, a record fails
 * or the lease is lost. Every claimed shard ends checkpointed-and-completed, or released with an
 * outcome — never left held by a live process.
 */
export async function runShard(input: ShardRunInput): Promise<ShardResult> {
  // Until the record loop has its own last words: a stop at once while the job hangs before its
  // first record (in source(), size(), setup()) still ends the run as interrupted, not running.
  const forgetEarlyWords = onStopAtOnce(() => input.store.release(input.lease, 'interrupted', { processed: 0 }));
  try {
    return await processShard(input, forgetEarlyWords);
  } catch (error) {
    forgetEarlyWords();
    if (error instanceof ReleasedUsage) throw error.error;
    // Reached only when the shard could not start (its source or the store failed before the
    // record loop) or could not end cleanly: release it so no live process keeps it held.
    const { store, lease, emit } = input;
    const message = `shard ${lease.shard}: ${describeJobError(error, jobFileOf(input.job))}`;
    const outcome = error instanceof FencedError ? 'lost' : 'failed';
    await store.release(lease, outcome, { error: message }).catch(() => undefined);
    await emit('run:end', { shard: lease.shard, runId: lease.runId, outcome, processed: 0, position: null, error: message }, lease.runId).catch(
      () => undefined,
    );
    // Drift is the operator's decision, not a failed shard: the runner reports or restarts.
    if (error instanceof DriftError || error instanceof RestartForDrift || error instanceof CorruptCheckpointError) throw error;
    // So is an input that is not there (exit 2): nothing about the shard failed.
    if (error instanceof UsageError) throw error;
    return {
      shard: lease.shard,
      outcome,
      records: 0,
      processed: 0,
      position: null,
      resumedFrom: null,
      rework: 0,
      reworkMs: 0,
      interval: { ms: null, records: null, reason: 'none' },
      checkpoints: 0,
      checkpointMs: 0,
      error: message,
      ...(error instanceof Error && error.stack !== undefined ? { stack: error.stack } : {}),
    };
  }
}

async function processShard(input: ShardRunInput, forgetEarlyWords: () => void): Promise<ShardResult> {
  const { job, store, lease, policy } = input;
  const shard = lease.shard;
  // Stored events never join the chunk's transaction (every store appends them on their own
  // connection or file, durably at once), so a savepoint rollback cannot erase them and nothing
  // waits for the baton to be put down before the log has them.
  const baton = new Baton();
  const emit: Emit = input.emit;
  const source = await job.source({ params: input.params, shard });
  const total = await Promise.resolve(source.size?.()).catch(() => undefined);
  const latest = await store.latest(lease);
  const checkpoint = latest.checkpoint;
  if (latest.corruptWroteTx.length > 0 && input.onDrift !== 'resume') {
    // That chunk's ctx.tx rows are committed: resuming from the checkpoint before would write them again.
    await emit(
      'checkpoint:corrupt',
      { shard, skipped: latest.corrupt, usedSeq: checkpoint?.seq ?? null, wroteTx: latest.corruptWroteTx, refused: true },
      lease.runId,
    );
    const seqs = latest.corruptWroteTx.join(', ');
    throw new CorruptCheckpointError(
      `shard ${shard}: checkpoint ${seqs} fails its checksum, and the chunk behind it wrote through ctx.tx; resuming from ` +
        `${checkpoint === undefined ? 'the start' : `checkpoint ${checkpoint.seq}`} would write those rows again. ` +
        'Restore the store from a backup, or run with --on-drift resume to fall back anyway',
      { job: job.name, shard },
    );
  }
  if (latest.corrupt.length > 0) {
    await emit(
      'checkpoint:corrupt',
      { shard, skipped: latest.corrupt, usedSeq: checkpoint?.seq ?? null, ...(latest.corruptWroteTx.length > 0 ? { wroteTx: latest.corruptWroteTx } : {}) },
      lease.runId,
    );
  }
  const drift = await checkDrift({
    store,
    lease,
    job: job.name,
    version: job.version ?? null,
    paramsHash: input.paramsHash,
    code: codeIdentity(job, input.params, shard),
    source,
    resuming: checkpoint !== undefined,
    // A carried checkpoint (see resetInstance's carry) is the only first one with nothing counted.
    carried: checkpoint !== undefined && checkpoint.seq === 1 && checkpoint.processed === 0 ? { position: checkpoint.position } : undefined,
    onDrift: input.onDrift,
    migrates: job.migrate !== undefined,
    emit,
  });
  const deadLetters = { count: await store.countDeadLetters(lease) };
  const deadLettersBefore = deadLetters.count;
  const earlier = (await store.listRuns(lease.instanceId, { limit: 1000 })).filter(
    (run) => run.shard === shard && run.generation === lease.generation && run.id < lease.runId,
  );
  const redo = reworkAfter(earlier, checkpoint?.processed ?? 0);

  let state = (checkpoint?.state ?? job.initialState?.({ params: input.params, shard }) ?? {}) as JsonObject;
  if (drift !== undefined && checkpoint !== undefined && job.migrate !== undefined) {
    const migrated: unknown = job.migrate(state, drift.migrateFrom);
    if (migrated === null || typeof migrated !== 'object' || Array.isArray(migrated)) {
      throw new Error(`migrate() must return the state as a plain object (got ${Array.isArray(migrated) ? 'an array' : typeof migrated})`);
    }
    state = migrated as JsonObject;
  }
  const resumed = { position: checkpoint?.position ?? null, processed: checkpoint?.processed ?? 0 };
  const resumedFrom = resumed.position;
  const started = performance.now();
  const rework = new ReworkClock(redo, resumed.processed, started);
  /** A follower's lag as last measured, reported with the heartbeat's stats (`ckpt status --json`). */
  let lag: { records: number; ms?: number; at: number } | undefined;
  const runStats = () => {
    const chosen = policy.interval();
    return {
      ...(lag === undefined ? {} : { lag }),
      policy: policy.describe(),
      intervalMs: Number.isFinite(chosen.ms) ? chosen.ms : null,
      intervalRecords: chosen.records ?? null,
      intervalReason: chosen.reason,
      ...rework.stats(),
    };
  };

  // Not retried: if the store is unreachable now, the first commit finds out and ends the run.
  // With the stats: a run killed before its first periodic heartbeat still says whose work it redid.
  await store.heartbeat(lease, { resumedFrom, rework: redo.records, markProcessed: resumed.processed, stats: runStats() }).catch((error: unknown) => {
    if (!isTransientStoreError(error)) throw error;
  });
  if (checkpoint === undefined) await emit('run:start', { shard, worker: lease.worker, runId: lease.runId, total }, lease.runId);
  else
    await emit(
      'run:resume',
      {
        shard,
        worker: lease.worker,
        runId: lease.runId,
        position: resumedFrom,
        processed: resumed.processed,
        rework: redo.records,
        reworkAtMost: redo.atMost,
        total,
      },
      lease.runId,
    );

  const stop = new AbortController();
  const onExternalStop = () => stop.abort('interrupted');
  if (input.signal?.aborted) onExternalStop();
  input.signal?.addEventListener('abort', onExternalStop, { once: true });
  let lostReason: string | undefined;
  const effects = new Effects({
    store,
    scope: { instanceId: lease.instanceId, generation: lease.generation },
    job: job.name,
    shard,
    runId: lease.runId,
    secretKey: input.secretKey,
    notify: input.notify,
    leaseLost: () => lostReason !== undefined,
    fence: { shardId: lease.shardId, token: lease.token, shard, runId: lease.runId },
    guards: effectGuards(job, input.params, limitsShareOfInstance(job) ? await input.instanceTotal() : total),
    ...(input.plan === undefined
      ? {}
      : { guard: new PlanApplyGuard(input.plan, (effect) => emit('effect:held', { ...effect, plan: input.plan?.id ?? '' }, lease.runId)) }),
    ...(input.rateLimiter === undefined ? {} : { rateLimiter: input.rateLimiter }),
  });
  // An incremental job's file may be mid-append: its unfinished last line waits for the next run.
  const cursor = openCursor(source, resumed.position ?? undefined, {
    signal: stop.signal,
    ...(input.follow ? { follow: true } : {}),
    ...(job.incremental ? { growing: true } : {}),
  });
  // Opened only now: a source that fails before this point must leave neither a transaction open
  // nor a timer keeping the process alive and the lease renewed.
  const committed = source.committed === undefined ? undefined : (position: JsonValue) => source.committed?.(position);
  const boundary = await CheckpointBoundary.open({ store, lease, policy, emit, baton, runStats, committed, held: () => effects.held }, resumed);
  try {
    await runSetup(job, { params: input.params, shard, state, tx: boundary.tx() });
  } catch (error) {
    await boundary.rollback();
    await cursor.close();
    throw error;
  }
  // Marks five times per heartbeat: a crash's rework is then known to within ~1/5 s of records.
  // Under `every: N` a crash loses at most N anyway: marks finer than that say nothing more, and
  // no finer than 16, so `every: 1` pays one mark per 16 records, not a second write per record.
  const everyRecords = policy.interval().reason === 'fixed' ? policy.interval().records : undefined;
  const marker = new ProgressMarker(
    store,
    lease,
    resumed.processed,
    Math.max(10, input.heartbeatMs / 5),
    everyRecords === undefined ? undefined : Math.max(16, everyRecords),
  );
  let lastProgress = 0;
  const loop = new RecordLoop(
    {
      job,
      params: input.params,
      store,
      lease,
      state,
      log: eventLogger(shard, (data) => void emit('log', data)),
      signal: stop.signal,
      stop,
      baton,
      chunk: boundary,
      cursor,
      marker,
      concurrency: input.concurrency,
      effects,
      retry: input.retry,
      skipLimit: input.skipLimit,
      deadLetters,
      holds: input.plan !== undefined,
      emit,
      onYield: () => {
        const now = performance.now();
        if (now - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = now;
        const rate = loop.records / Math.max(1e-3, (now - started) / 1000);
        void emit('progress', {
          shard,
          processed: loop.processed + loop.inFlight,
          inFlight: loop.inFlight,
          total,
          rate,
          lastCheckpointAt: boundary.lastCheckpointAt,
        });
      },
    },
    resumed,
  );
  rework.watch(loop, boundary);
  forgetEarlyWords();
  const forgetLastWords = onStopAtOnce(() => marker.final(loop.processed + loop.inFlight));
  let lagAsked = 0;
  let lagPending = false;
  const heartbeat = setInterval(() => {
    loop.wakeIfDue();
    if (input.follow && source.behind !== undefined && !lagPending && Date.now() - lagAsked >= LAG_EVERY_MS) {
      lagPending = true;
      lagAsked = Date.now();
      source
        .behind(loop.progress().position ?? undefined)
        .then((measured) => {
          lag = { ...measured, at: Date.now() };
        })
        .catch(() => undefined)
        .finally(() => {
          lagPending = false;
        });
    }
    store.heartbeat(lease, { processed: loop.records, markProcessed: loop.processed + loop.inFlight, stats: runStats() }).then(
      (held) => {
        if (!held && lostReason === undefined) {
          lostReason = 'the lease was taken by another worker';
          stop.abort('lost');
        }
      },
      () => undefined, // a missed heartbeat is retried by the next; fencing guards the checkpoint
    );
  }, input.heartbeatMs);
  try {
    await loop.run();
  } catch (error) {
    if (error instanceof FencedError) lostReason = error.message;
    // The loop itself failed, not a record: the chunk's buffered writes, its commit, a progress mark.
    else if (!loop.failed) loop.fail(error, loop.dispatched, 'checkpoint');
  } finally {
    clearInterval(heartbeat);
    input.signal?.removeEventListener('abort', onExternalStop);
    await cursor.close();
  }
  rework.stop(boundary);
  const ended = await endShard({
    input,
    boundary,
    loop,
    resumedFrom,
    rework,
    forgetLastWords,
    deadLetters: deadLetters.count - deadLettersBefore,
    lostReason,
    runStats,
  });
  // The source found a mistake in its own configuration as it read (a table or column its database
  // does not have, a CSV option csv-parse refuses): the run is released as failed, and the mistake
  // ends the job as one line with exit 2, as it does when met before the first record.
  if (ended.outcome === 'failed' && loop.failedIn === 'source' && loop.failure instanceof UsageError) throw new ReleasedUsage(loop.failure);
  return ended;
}

/** A configuration mistake met by the source after the shard run was released: passed on as is. */
class ReleasedUsage {
  readonly error: UsageError;
  constructor(error: UsageError) {
    this.error = error;
  }
}
