import { FencedError, firstLine, HeldError, RowsLockedError, StoreUnavailableError } from '../../errors.ts';
import type { JsonValue } from '../../json.ts';
import { storableError } from '../../store/rows.ts';
import type { RunProgress } from '../../store/store.ts';
import { describeJobError } from '../code-location.ts';
import { jobFileOf } from '../define.ts';
import type { CheckpointBoundary } from '../record/checkpoint-boundary.ts';
import type { RecordLoop } from '../record/record-loop.ts';
import type { ReworkClock } from './rework-clock.ts';
import type { ShardResult, ShardRunInput } from './shard-types.ts';

export interface ShardEndInput {
  input: ShardRunInput;
  boundary: CheckpointBoundary;
  loop: RecordLoop;
  /** The checkpoint's position this run resumed from. */
  resumedFrom: JsonValue | null;
  rework: ReworkClock;
  /** Unregisters the run's last words (its exact progress, written if the process exits at once). */
  forgetLastWords: () => void;
  /** Records this run sent to dead letters. */
  deadLetters: number;
  /** Set when another worker took the shard (a heartbeat said so, or a commit was fenced). */
  lostReason: string | undefined;
  runStats: () => RunProgress['stats'];
}

/**
 * How a shard run ends once its record loop has returned: the last checkpoint and the shard's
 * completion together (source exhausted), the chunk rolled back (a record failed: the checkpoint
 * stays at the last good boundary), a final checkpoint after draining (stopped from outside), or
 * the shard given up (lost to another worker, or to the store). Every path releases the lease.
 */
export async function endShard(end: ShardEndInput): Promise<ShardResult> {
  const { input, boundary, loop, rework } = end;
  const { store, lease, emit, policy } = input;
  const shard = lease.shard;
  // Every way out builds its result once the run's row is final: from then on no last words.
  const result = (outcome: ShardResult['outcome'], error?: string, cause?: unknown): ShardResult => {
    end.forgetLastWords();
    const chosen = policy.interval();
    return {
      shard,
      outcome,
      records: loop.records,
      processed: boundary.committed,
      position: boundary.position,
      resumedFrom: end.resumedFrom,
      ...rework.result(),
      interval: { ms: Number.isFinite(chosen.ms) ? chosen.ms : null, records: chosen.records ?? null, reason: chosen.reason },
      checkpoints: boundary.checkpoints,
      checkpointMs: boundary.checkpointMs,
      deadLetters: end.deadLetters,
      ...(error === undefined ? {} : { error }),
      ...(cause instanceof Error && cause.stack !== undefined ? { stack: cause.stack } : {}),
    };
  };
  const release = async (outcome: ShardResult['outcome'], error?: string, cause?: unknown): Promise<ShardResult> => {
    await boundary.rollback();
    const { checkpoints, checkpointMs } = boundary;
    // The outcome is decided and what was committed is known: a store that cannot record the end
    // (a full disk, a lost connection) must neither turn it into another failure nor lose those
    // counts, or the summary would say "records 0, checkpoints 0" after committed checkpoints. An
    // unreleased run is reaped later; the failure line says its end went unrecorded.
    let unrecorded: unknown;
    await store
      .release(lease, outcome, {
        processed: loop.records,
        markProcessed: loop.processed,
        checkpoints,
        checkpointMs,
        stats: end.runStats(),
        error: error ?? null,
      })
      .catch((failure: unknown) => {
        unrecorded = failure;
      });
    const position = boundary.position;
    await emit(
      'run:end',
      { shard, runId: lease.runId, outcome, processed: boundary.committed, position, ...(error === undefined ? {} : { error }) },
      lease.runId,
    ).catch((failure: unknown) => {
      unrecorded ??= failure;
    });
    const told = error === undefined || unrecorded === undefined ? error : `${error} (and its end could not be recorded: ${firstLine(unrecorded)})`;
    return result(outcome, told, cause);
  };
  const describe = (error: unknown) => describeJobError(error, jobFileOf(input.job));
  /** Lets the other records in flight settle, but no longer than the drain deadline. */
  const settleInFlight = () => Promise.race([loop.drain(), sleepFor(input.drainMs)]);
  const lose = async (reason: string): Promise<ShardResult> => {
    await settleInFlight();
    await boundary.rollback();
    await store.release(lease, 'lost', { processed: loop.records, error: reason }).catch(() => undefined);
    await emit('shard:lost', { shard, token: lease.token, reason }, lease.runId).catch(() => undefined);
    return result('lost', reason);
  };
  /**
   * The store failed under this run (connection lost mid-chunk or mid-commit). The chunk's ctx.tx
   * writes went with the connection, or were committed with their checkpoint: either way the next
   * claim resumes from the checkpoint the store holds, so no record is lost or doubled.
   */
  const loseToStore = async (error: unknown): Promise<ShardResult> => {
    // Rows held by a cut-off holder until the server ends its session: a lease matter, not an
    // outage, so it does not count toward --store-retry-ms; the shard is claimed again.
    if (error instanceof RowsLockedError) return await lose(`${firstLine(error)}; the shard is resumed from its last checkpoint`);
    const lost = await lose(`the store was unreachable (${firstLine(error)}); the shard is resumed from its last checkpoint`);
    return { ...lost, storeUnavailable: true };
  };

  try {
    if (end.lostReason !== undefined) return await lose(end.lostReason);
    const failure = loop.failure;
    if (failure instanceof StoreUnavailableError) return await loseToStore(failure);
    // A record met the fence before the heartbeat did (a worker woken past its lease whose next
    // ctx.once was refused): the shard is lost, as when the heartbeat finds it, not failed.
    if (failure instanceof FencedError) return await lose(failure.message);
    if (loop.failed) {
      await settleInFlight();
      // The chunk is rolled back (the checkpoint stays at the last good boundary) before the
      // error is logged, so the event log keeps it.
      await boundary.rollback();
      // Held by a guard: not a failure; the checkpoint stays before the effect it refused.
      if (failure instanceof HeldError) return await release('held', failure.message);
      const where = loop.failedPosition ?? loop.dispatched;
      const described = storableError(describe(failure));
      if (loop.failedIn !== 'record') return await release('failed', `${failedWhere(loop.failedIn, loop.dispatched)}: ${described}`, failure);
      await emit('record:error', { shard, position: where, error: described }, lease.runId);
      const limit = input.skipLimit > 0 ? ` (skip limit of ${input.skipLimit} dead letters reached)` : '';
      return await release('failed', `record at position ${JSON.stringify(where)} failed: ${described}${limit}`, failure);
    }
    const drainStarted = performance.now();
    if (loop.exhausted && (await loop.drainUnlessStopped())) {
      if (loop.failed) return await release('failed', describe(loop.failure), loop.failure);
      if (loop.abandoned) return await release('interrupted');
      await boundary.commit(loop.progress(), true, drainStarted);
      // The shard's size is known now: an earlier run cannot have done more past the checkpoint
      // than there was, whatever its progress mark (a ceiling) said.
      rework.clamp(loop.processed);
      // The commit ended the run with the checkpoint time before its own (a commit cannot write
      // how long it takes): the release writes the total, so the row agrees with the summary. The
      // shard is already complete: a store failing here costs only that figure, not the outcome.
      const { checkpoints, checkpointMs } = boundary;
      await store.release(lease, 'completed', { checkpoints, checkpointMs, rework: rework.records }).catch(() => undefined);
      await emit('shard:complete', { shard, processed: loop.processed }, lease.runId);
      await emit('run:end', { shard, runId: lease.runId, outcome: 'completed', processed: loop.processed, position: boundary.position }, lease.runId);
      return result('completed');
    }
    // Stopped from outside: let records in flight finish, then save where we are.
    const drained = await Promise.race([loop.drain().then(() => true), sleepFor(input.drainMs).then(() => false)]);
    if (drained && !loop.failed && !loop.abandoned && boundary.sinceRecords > 0) await boundary.commit(loop.progress(), false, drainStarted);
    return await release('interrupted');
  } catch (error) {
    if (error instanceof FencedError) return await lose(error.message);
    if (error instanceof StoreUnavailableError) return await loseToStore(error);
    if (error instanceof HeldError) {
      // A hold the job's code caught (its last commit refused): rolled back to the last checkpoint.
      await boundary.rollback();
      return await release('held', error.message);
    }
    return await release('failed', describe(error), error);
  }
}

/** What failed, when it was not a record, and the last position dispatched. */
function failedWhere(failedIn: 'source' | 'checkpoint', dispatched: JsonValue | null): string {
  if (failedIn === 'source')
    return dispatched === null ? 'the source failed before its first record' : `the source failed after position ${JSON.stringify(dispatched)}`;
  return `the checkpoint at position ${dispatched === null ? 'start' : JSON.stringify(dispatched)} failed`;
}

export function sleepFor(ms: number): Promise<void> {
  // A Node timer longer than 2^31-1 ms fires at once (with a warning): cap it instead.
  return new Promise((resolve) => setTimeout(resolve, Math.min(ms, 2_147_483_647)).unref());
}
