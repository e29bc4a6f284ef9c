import { DriftError, FencedError, firstLine, StoreUnavailableError, UsageError } from '../errors.ts';
import type { EventMap, EventType } from '../events.ts';
import type { JsonObject, JsonValue } from '../json.ts';
import type { SourceItem } from '../source/source.ts';
import type { Lease, RunOutcome, Store, Tx } from '../store/store.ts';
import { asStoreError, isTransientStoreError } from '../store/transient.ts';
import { Baton } from './baton.ts';
import { describeJobError } from './code-location.ts';
import { eventLogger } from './context.ts';
import { type AnyJob, jobFileOf } from './define.ts';
import { checkDrift, type OnDrift, RestartForDrift } from './drift.ts';
import { Effects } from './effects.ts';
import type { CheckpointPolicy } from './policy.ts';
import { ProgressMarker, reworkAfter } from './progress-mark.ts';
import { type Emit, processRecord, RecordAbandoned } from './record-run.ts';
import type { RetryPolicy } from './retry.ts';
import { runSetup } from './setup.ts';
import { onStopAtOnce } from './stop-at-once.ts';

export interface ShardResult {
  shard: string;
  outcome: Exclude<RunOutcome, 'running' | 'crashed'>;
  /** Records finished in this run. */
  records: number;
  /** Shard total: records covered by its checkpoint. */
  processed: number;
  /** Position of the last checkpoint (where the next run resumes). */
  position: JsonValue | null;
  resumedFrom: JsonValue | null;
  rework: number;
  /** `rework` is a ceiling from a crashed run's progress mark: the truth is at most `reworkMarkStep` less. */
  reworkAtMost?: boolean;
  reworkMarkStep?: number;
  /** Time this run spent redoing the rework records, ms (checkpoint time excluded). */
  reworkMs: number;
  /** The checkpoint interval in force at the end: ms of work and records (auto: chosen from measurements). */
  interval: { ms: number | null; records: number | null; reason: string };
  checkpoints: number;
  checkpointMs: number;
  /** Records this run sent to dead letters (committed ones only count once the chunk commits). */
  deadLetters?: number;
  error?: string;
  /** The failure's full stack, for CKPT_DEBUG=1 (never stored). */
  stack?: string;
  /** The run ended because the store was unreachable (its lease is released or will expire). */
  storeUnavailable?: boolean;
}

export interface ShardRunInput {
  job: AnyJob;
  params: unknown;
  store: Store;
  lease: Lease;
  policy: CheckpointPolicy;
  concurrency: number;
  heartbeatMs: number;
  drainMs: number;
  signal: AbortSignal | undefined;
  emit: Emit;
  /** Listeners only: for events the effect journal stores itself. */
  notify: <K extends EventType>(type: K, data: EventMap[K]) => void;
  paramsHash: string;
  onDrift: OnDrift;
  retry: RetryPolicy;
  skipLimit: number;
  secretKey: () => Buffer;
}

/** How long the record loop may run before it lets timers (heartbeat, signals) in. */
const YIELD_EVERY_MS = 15;
const PROGRESS_EVERY_MS = 200;

/**
 * Processes one claimed shard until its source is exhausted, the run is stopped, a record fails
 * or the lease is lost. Every claimed shard ends checkpointed-and-completed, or released with an
 * outcome — never left held by a live process.
 */
export async function runShard(input: ShardRunInput): Promise<ShardResult> {
  try {
    return await processShard(input);
  } catch (error) {
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
    if (error instanceof DriftError || error instanceof RestartForDrift) throw error;
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

async function processShard(input: ShardRunInput): Promise<ShardResult> {
  const { job, store, lease, policy, concurrency } = input;
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
  if (latest.corrupt.length > 0) await emit('checkpoint:corrupt', { shard, skipped: latest.corrupt, usedSeq: checkpoint?.seq ?? null }, lease.runId);
  await checkDrift({
    store,
    lease,
    job: job.name,
    version: job.version ?? null,
    paramsHash: input.paramsHash,
    source,
    resuming: checkpoint !== undefined,
    onDrift: input.onDrift,
    emit,
  });
  const deadLetters = { count: await store.countDeadLetters(lease) };
  const deadLettersBefore = deadLetters.count;
  const earlier = (await store.listRuns(lease.instanceId, { limit: 1000 })).filter(
    (run) => run.shard === shard && run.generation === lease.generation && run.id < lease.runId,
  );
  const redo = reworkAfter(earlier, checkpoint?.processed ?? 0);
  const rework = redo.records;

  const state = (checkpoint?.state ?? job.initialState?.({ params: input.params, shard }) ?? {}) as JsonObject;
  let position: JsonValue | null = checkpoint?.position ?? null;
  const resumedFrom = position;
  let processed = checkpoint?.processed ?? 0;
  /** Shard total covered by the last committed checkpoint. */
  let committed = processed;
  let records = 0;
  const started = performance.now();
  let checkpoints = 0;
  let checkpointMs = 0;
  let lastCheckpointAt = Date.now();
  // Rework is timed until the shard total passes where the crashed run got to.
  const reworkUntil = processed + rework;
  let reworkMs: number | undefined = rework > 0 ? undefined : 0;
  const runStats = () => {
    const chosen = policy.interval();
    return {
      policy: policy.describe(),
      intervalMs: Number.isFinite(chosen.ms) ? chosen.ms : null,
      intervalRecords: chosen.records ?? null,
      intervalReason: chosen.reason,
      ...(rework > 0 ? { reworkMs: reworkMs ?? null, reworkAtMost: redo.atMost, reworkMarkStep: redo.markStep, reworkFromRun: redo.fromRun } : {}),
    };
  };

  // Not retried: if the store is unreachable now, the first commit finds out and ends the run.
  // With the stats: a run killed before its first periodic heartbeat still says whose work it redid.
  await store.heartbeat(lease, { resumedFrom, rework, markProcessed: processed, stats: runStats() }).catch((error: unknown) => {
    if (!isTransientStoreError(error)) throw error;
  });
  if (checkpoint === undefined) await emit('run:start', { shard, worker: lease.worker, runId: lease.runId, total }, lease.runId);
  else
    await emit('run:resume', { shard, worker: lease.worker, runId: lease.runId, position, processed, rework, reworkAtMost: redo.atMost, total }, lease.runId);

  const stop = new AbortController();
  const onExternalStop = () => stop.abort('interrupted');
  if (input.signal?.aborted) onExternalStop();
  input.signal?.addEventListener('abort', onExternalStop, { once: true });
  let lostReason: string | undefined;
  let failure: unknown;
  let failedPosition: JsonValue | null = null;
  /** A record was given up mid-way by a stop: the open chunk must not be committed. */
  let abandoned = false;

  let wakeIfDue: () => void = () => undefined;
  const log = eventLogger(shard, (data) => void emit('log', data));
  const inFlight = new Set<Promise<void>>();
  let sinceRecords = 0;
  let sinceStart = performance.now();
  let dispatchedPosition: JsonValue | null = position;

  const effects = new Effects({
    store,
    scope: { instanceId: lease.instanceId, generation: lease.generation },
    job: job.name,
    shard,
    runId: lease.runId,
    secretKey: input.secretKey,
    notify: input.notify,
    leaseLost: () => lostReason !== undefined,
  });
  const recordInput = {
    job,
    params: input.params,
    store,
    lease,
    state,
    log,
    signal: stop.signal,
    baton,
    tx: () => tx,
    effects,
    retry: input.retry,
    skipLimit: input.skipLimit,
    deadLetters,
    emit,
  };
  const dispatch = (item: SourceItem<unknown, unknown>): Promise<void> => {
    const work: Promise<void> = processRecord(item, recordInput).then(
      () => {
        inFlight.delete(work);
        records++;
        processed++;
        if (reworkMs === undefined && processed >= reworkUntil) reworkMs = performance.now() - started - checkpointMs;
      },
      (error: unknown) => {
        inFlight.delete(work);
        if (error instanceof RecordAbandoned) {
          abandoned = true;
          return;
        }
        if (failure === undefined) {
          failure = error;
          failedPosition = item.position as JsonValue;
        }
        stop.abort('failed');
      },
    );
    inFlight.add(work);
    return work;
  };
  const drain = async () => {
    while (inFlight.size > 0) await Promise.all(inFlight);
  };
  // A record that never settles must not outlast a stop: every wait on records in flight also
  // ends when the run is stopped, and the stop path below bounds the rest by the drain deadline.
  // Racing each wait against one long-lived "stopped" promise would leave a reaction on it per
  // record (gigabytes over ten million records): each wait registers itself and leaves instead.
  const stopWaiters = new Set<() => void>();
  stop.signal.addEventListener('abort', () => {
    for (const wake of [...stopWaiters]) wake();
  });
  const untilStopped = (promise: Promise<unknown>): Promise<void> => {
    if (stop.signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        stopWaiters.delete(done);
        resolve();
      };
      stopWaiters.add(done);
      promise.then(done, done);
    });
  };
  /** Drains unless stopped first; true when nothing is left in flight. */
  const drainUnlessStopped = async (): Promise<boolean> => {
    await untilStopped(drain());
    return inFlight.size === 0;
  };
  const commit = async (complete: boolean, drainStarted: number) => {
    const saved = await store
      .commit(
        tx,
        { position: dispatchedPosition, state, processed },
        { processed: records, markProcessed: processed, checkpoints: checkpoints + 1, checkpointMs, stats: runStats(), complete },
      )
      .catch((error: unknown) => {
        throw asStoreError(error, store.location);
      });
    const ms = performance.now() - drainStarted;
    checkpoints++;
    checkpointMs += ms;
    position = saved.position;
    committed = saved.processed;
    lastCheckpointAt = saved.createdAt;
    await emit('checkpoint', { shard, seq: saved.seq, position, processed, records: sinceRecords, ms });
    sinceRecords = 0;
    sinceStart = performance.now();
    if (!complete) tx = await store.begin(lease);
    return ms;
  };

  let exhausted = false;
  let lastYield = performance.now();
  let lastProgress = 0;
  const iterator = source.read(position ?? undefined, { signal: stop.signal })[Symbol.asyncIterator]();
  // A quiet source must hold up neither a stop nor the time-based checkpoint of work already
  // done: waiting for the next record races a wake-up from the stop signal and the heartbeat.
  let pending: Promise<IteratorResult<SourceItem<unknown, unknown>>> | undefined;
  let waiter: ((result: undefined) => void) | undefined;
  stop.signal.addEventListener('abort', () => waiter?.(undefined), { once: true });
  wakeIfDue = () => {
    if (waiter !== undefined && inFlight.size === 0 && sinceRecords > 0 && policy.due(sinceRecords, performance.now() - sinceStart)) waiter(undefined);
  };
  /** The next record, or undefined when woken (stopped, or a checkpoint fell due) first. */
  const nextOrWake = async (): Promise<IteratorResult<SourceItem<unknown, unknown>> | undefined> => {
    pending ??= iterator.next();
    const next = pending;
    const result = await new Promise<IteratorResult<SourceItem<unknown, unknown>> | undefined>((resolve, reject) => {
      waiter = resolve;
      next.then(resolve, reject);
      if (stop.signal.aborted) resolve(undefined);
    });
    waiter = undefined;
    if (result !== undefined) pending = undefined;
    return result;
  };
  // Opened only now: a source that fails before this point must leave neither a transaction open
  // nor a timer keeping the process alive and the lease renewed.
  let tx: Tx = await store.begin(lease);
  try {
    await runSetup(job, { params: input.params, shard, state, tx });
  } catch (error) {
    await store.rollback(tx).catch(() => undefined);
    throw error;
  }
  // Marks five times per heartbeat: a crash's rework is then known to within ~1/5 s of records.
  // Under `every: N` a crash loses at most N anyway: marks finer than that say nothing more, and
  // no finer than 16, so `every: 1` pays one mark per 16 records, not a second write per record.
  const everyRecords = policy.interval().reason === 'fixed' ? policy.interval().records : undefined;
  const marker = new ProgressMarker(
    store,
    lease,
    processed,
    Math.max(10, input.heartbeatMs / 5),
    everyRecords === undefined ? undefined : Math.max(16, everyRecords),
  );
  const forgetLastWords = onStopAtOnce(() => marker.final(processed + inFlight.size));
  const heartbeat = setInterval(() => {
    wakeIfDue();
    store.heartbeat(lease, { processed: records, markProcessed: processed + inFlight.size, stats: runStats() }).then(
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
    for (;;) {
      if (stop.signal.aborted) break;
      const next = await nextOrWake();
      if (next === undefined) {
        if (stop.signal.aborted) break;
        const drainStarted = performance.now();
        if (!(await drainUnlessStopped())) break;
        if (failure !== undefined || abandoned) break;
        policy.observe({ records: sinceRecords, workMs: drainStarted - sinceStart, checkpointMs: await commit(false, drainStarted) });
        continue;
      }
      if (next.done) {
        exhausted = true;
        break;
      }
      if (stop.signal.aborted) break;
      // The boundary is checked when the next record arrives, so a source that ends right at a
      // boundary gets one checkpoint (the completing one), not two.
      if (sinceRecords > 0 && policy.due(sinceRecords, performance.now() - sinceStart)) {
        const drainStarted = performance.now();
        if (!(await drainUnlessStopped())) break;
        if (failure !== undefined || abandoned) break;
        policy.observe({ records: sinceRecords, workMs: drainStarted - sinceStart, checkpointMs: await commit(false, drainStarted) });
      }
      // A position that is not JSON, or a numeric one that does not increase, would make a resume
      // (strictly after the checkpoint's position) skip or redo records: fail before it is used.
      const misplaced = positionProblem(dispatchedPosition, next.value.position);
      if (misplaced !== undefined) {
        failure = new Error(`${misplaced}; a source must yield JSON positions in increasing order, strictly after the one it was given`);
        failedPosition = isJsonScalar(next.value.position) ? next.value.position : null;
        stop.abort('failed');
        break;
      }
      const count = processed + inFlight.size + 1;
      if (marker.needsMark(count)) await marker.raise(count);
      const work = dispatch(next.value);
      dispatchedPosition = next.value.position as JsonValue;
      sinceRecords++;
      if (concurrency === 1) await untilStopped(work);
      else while (inFlight.size >= concurrency && !stop.signal.aborted) await untilStopped(Promise.race(inFlight));
      if (failure !== undefined) break;
      const now = performance.now();
      if (now - lastYield > YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
        if (lastYield - lastProgress > PROGRESS_EVERY_MS) {
          lastProgress = lastYield;
          const rate = records / Math.max(1e-3, (lastYield - started) / 1000);
          void emit('progress', { shard, processed: processed + inFlight.size, inFlight: inFlight.size, total, rate, lastCheckpointAt });
        }
      }
    }
  } catch (error) {
    if (error instanceof FencedError) lostReason = error.message;
    else if (failure === undefined) failure = error;
  } finally {
    clearInterval(heartbeat);
    input.signal?.removeEventListener('abort', onExternalStop);
    // An async generator queues return() behind a next() still running: do not wait on that one.
    const closing = Promise.resolve(iterator.return?.()).catch(() => undefined);
    if (pending === undefined) await closing;
  }

  if (reworkMs === undefined) reworkMs = performance.now() - started - checkpointMs;
  const chosen = policy.interval();
  // Every way out builds its result once the run's row is final: from then on no last words.
  const result = (outcome: ShardResult['outcome'], error?: string, cause?: unknown): ShardResult => {
    forgetLastWords();
    return {
      shard,
      outcome,
      records,
      processed: committed,
      position,
      resumedFrom,
      rework,
      ...(rework > 0 ? { reworkAtMost: redo.atMost, reworkMarkStep: redo.markStep } : {}),
      reworkMs: reworkMs ?? 0,
      interval: { ms: Number.isFinite(chosen.ms) ? chosen.ms : null, records: chosen.records ?? null, reason: chosen.reason },
      checkpoints,
      checkpointMs,
      deadLetters: deadLetters.count - deadLettersBefore,
      ...(error === undefined ? {} : { error }),
      ...(cause instanceof Error && cause.stack !== undefined ? { stack: cause.stack } : {}),
    };
  };
  const end = async (outcome: ShardResult['outcome'], error?: string, cause?: unknown): Promise<ShardResult> => {
    await store.rollback(tx).catch(() => undefined);
    await store.release(lease, outcome, { processed: records, markProcessed: processed, checkpoints, checkpointMs, stats: runStats(), error: error ?? null });
    await emit('run:end', { shard, runId: lease.runId, outcome, processed: committed, position, ...(error === undefined ? {} : { error }) }, lease.runId);
    return result(outcome, error, cause);
  };

  try {
    if (lostReason !== undefined) return await lose(lostReason);
    if (failure instanceof StoreUnavailableError) return await loseToStore(failure);
    if (failure !== undefined) {
      await settleInFlight();
      // The chunk is rolled back (the checkpoint stays at the last good boundary) before the
      // error is logged, so the event log keeps it.
      await store.rollback(tx).catch(() => undefined);
      const where = failedPosition ?? dispatchedPosition;
      const described = describeJobError(failure, jobFileOf(job));
      await emit('record:error', { shard, position: where, error: described }, lease.runId);
      const limit = input.skipLimit > 0 ? ` (skip limit of ${input.skipLimit} dead letters reached)` : '';
      return await end('failed', `record at position ${JSON.stringify(where)} failed: ${described}${limit}`, failure);
    }
    const drainStarted = performance.now();
    if (exhausted && (await drainUnlessStopped())) {
      if (failure !== undefined) return await end('failed', describeJobError(failure, jobFileOf(job)), failure);
      if (abandoned) return await end('interrupted');
      await commit(true, drainStarted);
      await emit('shard:complete', { shard, processed }, lease.runId);
      await emit('run:end', { shard, runId: lease.runId, outcome: 'completed', processed, position }, lease.runId);
      return result('completed');
    }
    // Stopped from outside: let records in flight finish, then save where we are.
    const drained = await Promise.race([drain().then(() => true), sleepFor(input.drainMs).then(() => false)]);
    if (drained && failure === undefined && !abandoned && sinceRecords > 0) await commit(false, drainStarted);
    return await end('interrupted');
  } catch (error) {
    if (error instanceof FencedError) return await lose(error.message);
    if (error instanceof StoreUnavailableError) return await loseToStore(error);
    return await end('failed', describeJobError(error, jobFileOf(job)), error);
  }

  /** Lets the other records in flight settle, but no longer than the drain deadline. */
  async function settleInFlight(): Promise<void> {
    await Promise.race([Promise.allSettled(inFlight), sleepFor(input.drainMs)]);
  }

  async function lose(reason: string): Promise<ShardResult> {
    await settleInFlight();
    await store.rollback(tx).catch(() => undefined);
    await store.release(lease, 'lost', { processed: records, error: reason }).catch(() => undefined);
    await emit('shard:lost', { shard, token: lease.token, reason }, lease.runId).catch(() => undefined);
    return result('lost', reason);
  }

  /**
   * The store failed under this run (connection lost mid-chunk or mid-commit). The chunk's ctx.tx
   * writes went with the connection, or were committed with their checkpoint: either way the next
   * claim resumes from the checkpoint the store holds, so no record is lost or doubled.
   */
  async function loseToStore(error: unknown): Promise<ShardResult> {
    const lost = await lose(`the store was unreachable (${firstLine(error)}); the shard is resumed from its last checkpoint`);
    return { ...lost, storeUnavailable: true };
  }
}

function sleepFor(ms: number): Promise<void> {
  // A Node timer longer than 2^31-1 ms fires at once (with a warning): cap it instead.
  return new Promise((resolve) => setTimeout(resolve, Math.min(ms, 2_147_483_647)).unref());
}

function isJsonScalar(value: unknown): value is JsonValue {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** Why `next` cannot follow `previous` as a position, if it cannot (only numbers are compared). */
function positionProblem(previous: JsonValue | null, next: unknown): string | undefined {
  if (next === undefined || typeof next === 'function' || typeof next === 'symbol' || typeof next === 'bigint') {
    return `the source yielded a position that is not JSON (${typeof next})`;
  }
  if (typeof next === 'number' && !Number.isFinite(next)) return `the source yielded position ${next}, which JSON cannot hold`;
  if (typeof next === 'number' && typeof previous === 'number' && !(next > previous)) {
    return `the source yielded position ${next} after ${previous}`;
  }
  return undefined;
}
