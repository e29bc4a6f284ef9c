import { setTimeout as sleep } from 'node:timers/promises';
import { FencedError, firstLine, HeldError, StoreUnavailableError } from '../../errors.ts';
import type { EventMap, EventType } from '../../events.ts';
import type { JsonObject, JsonValue } from '../../json.ts';
import type { SourceItem } from '../../source/source.ts';
import { storableError } from '../../store/rows.ts';
import type { Lease, SqlHandle, Store } from '../../store/store.ts';
import { describeJobError } from '../code-location.ts';
import { type Job, type JobLogger, jobFileOf } from '../define.ts';
import type { Effects } from '../effects/effects.ts';
import { EffectHeldError } from '../guard/effect-guard.ts';
import { backoffDelay, type RetryPolicy } from '../policy/retry.ts';
import type { Baton } from '../tx/baton.ts';
import { type ChunkWrites, RecordTx, type TxHandle } from '../tx/record-tx.ts';
import { RecordContext, toJson } from './context.ts';

export type Emit = <K extends EventType>(type: K, data: EventMap[K], runId?: number) => Promise<void>;

/** A record given up because the run is stopping: its chunk must not be committed. */
export class RecordAbandoned extends Error {}

export interface RecordRunInput {
  job: Job;
  params: unknown;
  store: Store;
  lease: Lease;
  state: JsonObject;
  log: JobLogger;
  /** Aborted when the run stops. */
  signal: AbortSignal;
  baton: Baton;
  /** The shard's open transaction and its unsent writes (they change only at checkpoints, when no record is in flight). */
  chunk: ChunkWrites;
  effects: Effects;
  retry: RetryPolicy;
  skipLimit: number;
  /** Dead letters of the shard so far, committed or in the open chunk. */
  deadLetters: { count: number };
  /** An apply of a plan: a record whose effect the plan lacks is set aside (EffectHeldError), so it needs its savepoint. */
  holds?: boolean;
  emit: Emit;
}

/**
 * Process one record with its retries: each attempt's `ctx.tx` writes are rolled back when it
 * fails; after the last attempt the record goes to dead letters (through the chunk's
 * transaction, so exactly once) while the skip limit allows, else the error is thrown and the
 * run fails with its checkpoint at the last good boundary.
 */
export async function processRecord(item: SourceItem<unknown, unknown>, input: RecordRunInput, firstFailure?: { error: unknown }): Promise<void> {
  const { job, lease, retry } = input;
  const savepoint = needsSavepoint(input);
  for (let attempt = 1; ; attempt++) {
    // Created on the record's first `ctx.tx` use only: most records of most jobs never need one.
    let recordTx: RecordTx | undefined;
    try {
      // The record loop ran the first attempt itself (and ended its ctx.tx): only its error is left.
      if (attempt === 1 && firstFailure !== undefined) throw firstFailure.error;
      if (item.error) throw item.error;
      const ctx = recordContext(input, item.position, (sql) => {
        recordTx ??= new RecordTx(input.baton, input.chunk, sql, savepoint);
        return recordTx;
      });
      const result = job.process(item.record, ctx);
      if (isThenable(result)) await result;
      await ctx.durable();
      if (recordTx !== undefined) await recordTx.finish(true);
      return;
    } catch (error) {
      if (recordTx !== undefined) await recordTx.finish(false);
      // The store connection is gone and the chunk with it: no retry or dead letter can help this
      // record; the shard run ends and resumes from its checkpoint.
      if (error instanceof StoreUnavailableError) throw error;
      // Another worker holds the shard now (an effect's intent was refused for a stale token): a
      // retry or a dead letter would be this run's, which no longer has a say; the run ends lost.
      if (error instanceof FencedError) throw error;
      // A guard holds the instance: no retry or dead letter, the shard stops before the effect.
      if (error instanceof HeldError) throw error;
      if (input.signal.aborted) throw new RecordAbandoned(firstLine(error), { cause: error });
      const position = (toJson(item.position) ?? null) as JsonValue;
      if (error instanceof EffectHeldError) {
        // Not a failure: the plan did not contain this effect. The record is set aside, its
        // writes rolled back, with no retry and outside the skip limit (the event named it).
        input.deadLetters.count++;
        await deadLetter(input, item, position, attempt, error.message);
        return;
      }
      // Where in the job's code it failed, for the retry event and the dead letter: as the letter
      // stores it (cut at 32 KiB), so an error carrying a response body of megabytes is not
      // written whole into the event log at every attempt.
      const described = storableError(describeJobError(error, jobFileOf(job)));
      // A record the source could not decode fails the same way every time: no retry.
      if (item.error === undefined && attempt < retry.attempts) {
        const delayMs = backoffDelay(retry, attempt);
        await input.emit('record:retry', { shard: lease.shard, position, attempt, delayMs, error: described }, lease.runId);
        try {
          await sleep(delayMs, undefined, { signal: input.signal });
        } catch {
          throw new RecordAbandoned('stopped while waiting to retry');
        }
        continue;
      }
      // Check and count in one synchronous step, so concurrent records cannot overshoot the limit.
      if (input.deadLetters.count >= input.skipLimit) throw error;
      input.deadLetters.count++;
      await deadLetter(input, item, position, attempt, described);
      return;
    }
  }
}

/** A record's `ctx` in a run; `open` gives its `ctx.tx` on first use (not called when the store has no SQL). */
export function recordContext(input: RecordRunInput, position: unknown, open: (sql: SqlHandle) => TxHandle): RecordContext<unknown, JsonObject> {
  return new RecordContext({
    job: input.job.name,
    params: input.params,
    shard: input.lease.shard,
    fencingToken: input.lease.token,
    position,
    state: input.state,
    signal: input.signal,
    log: input.log,
    sql: () => {
      const sql = input.chunk.tx().sql;
      if (sql === undefined) return undefined;
      input.chunk.wroteTx = true;
      return open(sql);
    },
    effects: input.effects,
  });
}

/**
 * A record's own savepoint is needed only to survive its failure (a retry, a dead letter).
 * Without either, a failure fails the run and rolls back the whole chunk anyway.
 */
export function needsSavepoint(input: { retry: RetryPolicy; skipLimit: number; holds?: boolean }): boolean {
  return input.retry.attempts > 1 || input.skipLimit > 0 || input.holds === true;
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

async function deadLetter(input: RecordRunInput, item: SourceItem<unknown, unknown>, position: JsonValue, attempts: number, error: string): Promise<void> {
  const { lease } = input;
  const release = await input.baton.acquire();
  try {
    await input.store.addDeadLetter(input.chunk.tx(), { position, record: toJson(item.record), error, attempts });
  } finally {
    release();
  }
  await input.emit('record:dead', { shard: lease.shard, position, attempts, error, deadLetters: input.deadLetters.count, limit: input.skipLimit }, lease.runId);
}
