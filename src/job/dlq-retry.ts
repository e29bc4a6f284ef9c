import { LeaseHeldError, UsageError } from '../errors.ts';
import type { EventMap, EventType, RunEvent } from '../events.ts';
import type { JsonObject } from '../json.ts';
import { lazySecretKey } from '../secret.ts';
import { storableError } from '../store/rows.ts';
import type { DeadLetter, InstanceInfo, Lease, ShardInfo, Store } from '../store/store.ts';
import { describeJobError } from './code-location.ts';
import { type Job, jobFileOf } from './define.ts';
import { beginOutsideRun } from './effects/outside-run.ts';
import { effectGuards, instanceTotal, limitsShareOfInstance } from './guard/limits.ts';
import { FleetRateLimiter } from './guard/rate-limiter.ts';
import { resolveParams } from './params.ts';
import { eventLogger, RecordContext } from './record/context.ts';
import { runSetup } from './shard/setup.ts';
import { Baton } from './tx/baton.ts';
import { RecordTx } from './tx/record-tx.ts';
import { DEFAULT_LEASE_MS, defaultHeartbeatMs, defaultWorker, reapDeadWorkers } from './workers.ts';

export interface DlqRetryResult {
  instance: InstanceInfo;
  resolved: DeadLetter[];
  failed: { letter: DeadLetter; error: string }[];
  /** Letters another process retried first: this retry's writes for them were rolled back. */
  alreadyResolved: DeadLetter[];
  /** Letters not tried because `signal` stopped the retry (each one tried before it is settled). */
  notTried: number;
  /** Letters not tried because their shard's lease was held by another (a retry, or a run): `holder` names it. */
  held: { letter: DeadLetter; holder: string }[];
}

/**
 * The leases a retry holds on its letters' shards (LeaseStore.leaseShard), each taken when its
 * first letter is tried and held to the end, heartbeats extending them: while one is held, no
 * other retry (nor a run) takes the shard, and a retry that lost one (paused past it, another
 * took the shard) is fenced: its effects write no intent and start no `fn`.
 */
class RetryLeases {
  readonly #store: Store;
  readonly #instance: InstanceInfo;
  readonly #worker: string;
  readonly #leaseMs: number;
  readonly #held = new Map<number, { lease: Lease; lost: boolean }>();
  readonly #beat: NodeJS.Timeout;

  constructor(store: Store, instance: InstanceInfo, worker: string, leaseMs: number) {
    this.#store = store;
    this.#instance = instance;
    this.#worker = worker;
    this.#leaseMs = leaseMs;
    this.#beat = setInterval(() => void this.#heartbeat(), defaultHeartbeatMs(leaseMs));
    this.#beat.unref();
  }

  /** The shard's lease (taken now if this retry has none yet), or the holder another lease names. */
  async take(shard: ShardInfo): Promise<{ lease: Lease; lost: () => boolean } | { holder: string }> {
    let held = this.#held.get(shard.id);
    if (held === undefined) {
      const lease = await this.#store.leaseShard(this.#instance, shard, this.#worker, this.#leaseMs);
      if (lease === null) {
        // Named with how long its lease has left: a holder killed outright (SIGKILL) keeps it that long.
        const row = (await this.#store.listShards(this.#instance.id)).find((candidate) => candidate.id === shard.id);
        const left = row === undefined ? 0 : Math.ceil((row.leaseExpiresAt - (await this.#store.now())) / 1000);
        return { holder: `${row?.leaseOwner ?? 'another process'}${left > 0 ? ` for ${left} s more unless it renews its lease` : ''}` };
      }
      held = { lease, lost: false };
      this.#held.set(shard.id, held);
    }
    // Lost (this process paused past it, and another took the shard): the shard is the other's now.
    if (held.lost) return { holder: "another process (this retry's lease lapsed while it was stopped or cut off)" };
    const taken = held;
    return { lease: taken.lease, lost: () => taken.lost };
  }

  async #heartbeat(): Promise<void> {
    for (const held of this.#held.values()) {
      if (held.lost) continue;
      // A beat that fails (the server away a moment) is tried again at the next; the lease holds meanwhile.
      const holds = await this.#store.heartbeat(held.lease, {}).catch(() => true);
      if (!holds) held.lost = true;
    }
  }

  /** Frees every shard this retry leased (those it lost stay the new holder's). */
  async release(): Promise<void> {
    clearInterval(this.#beat);
    for (const held of this.#held.values()) {
      // runId 0: no run row is written, only the shard freed (if this token still holds it).
      await this.#store.release(held.lease, 'completed', {}).catch(() => undefined);
    }
  }
}

/**
 * `ckpt dlq <job-file> --retry`: process every dead letter of the instance again, one at a time,
 * each in its own transaction. A success commits its `ctx.tx` writes and deletes the letter in
 * one commit; a failure rolls back and stays a dead letter with its new error. `ctx.state` is
 * the shard's initial state and is not saved: a dead letter's retry changes no checkpoint.
 */
export async function retryDeadLetters(
  job: Job,
  options: {
    store: Store;
    params?: { [key: string]: string };
    secretKeyFile?: string;
    onEvent?: (event: RunEvent) => void;
    /** Stops the retry between letters (SIGINT/SIGTERM): the letter under way finishes, the rest stay. */
    signal?: AbortSignal;
    /** How long the leases on the letters' shards last unless renewed (heartbeats every third of it, at most a second); default 30 s. */
    leaseMs?: number;
  },
): Promise<DlqRetryResult> {
  const { store } = options;
  const { params, paramsHash } = resolveParams(job, options.params ?? {});
  const instance = (await store.listInstances(job.name)).find((candidate) => candidate.paramsHash === paramsHash);
  if (instance === undefined) throw new UsageError(`no instance of ${job.name} with these params has run on ${store.location}; see ckpt status`);
  await reapDeadWorkers(store, instance.id);
  const holders = await store.holders(instance.id);
  if (holders.length > 0) {
    throw new LeaseHeldError(
      `cannot retry dead letters of ${job.name} while worker ${holders[0]?.worker} runs it; wait for it to finish`,
      holders[0]?.worker ?? '',
    );
  }
  const notify = <K extends EventType>(type: K, data: EventMap[K]) => {
    options.onEvent?.({ type, at: Date.now(), job: job.name, instanceId: instance.id, data } as RunEvent);
  };
  const emit = async <K extends EventType>(type: K, data: EventMap[K]) => {
    notify(type, data);
    const shard = (data as { shard?: string }).shard ?? null;
    await store.appendEvents(instance.id, instance.generation, [{ type, shard, data: data as unknown as JsonObject }]);
  };
  const secretKey = lazySecretKey(process.env, options.secretKeyFile);
  await store.checkChainKey(instance.id);
  const shards = await store.listShards(instance.id);
  // A letter's effects count against the job's limits as a run's do: a retry of many letters
  // must not go past a limit that would have held the run (`ckpt approve` raises it).
  const total = limitsShareOfInstance(job)
    ? await instanceTotal(
        job,
        params,
        shards.map((row) => row.name),
      )
    : undefined;
  const guards = effectGuards(job, params, total);
  // And to the job's fleet rate limits: the retry's calls share the target's bucket with every worker.
  const rateLimiter = job.rateLimits === undefined ? undefined : new FleetRateLimiter(store, job.rateLimits);
  const result: DlqRetryResult = { instance, resolved: [], failed: [], alreadyResolved: [], notTried: 0, held: [] };
  const letters = await store.listDeadLetters(instance.id);
  const worker = defaultWorker();
  const leases = new RetryLeases(store, instance, worker, options.leaseMs ?? DEFAULT_LEASE_MS);
  const retryLetters = async (): Promise<void> => {
    for (const [index, letter] of letters.entries()) {
      if (options.signal?.aborted) {
        result.notTried = letters.length - index;
        break;
      }
      const shard = shards.find((row) => row.name === letter.shard);
      if (shard === undefined) continue;
      // Two retries at once would each take the other's effect in flight for one left in doubt:
      // the letter's shard is leased first, and a letter whose shard another holds is left to it.
      const held = await leases.take(shard);
      if ('holder' in held) {
        result.held.push({ letter, holder: held.holder });
        continue;
      }
      // ctx.tx as in a run: buffered writes are sent before the letter is resolved, in the same commit.
      const { lease, tx, chunk, effects } = await beginOutsideRun({
        store,
        instance,
        shard,
        job: job.name,
        worker,
        secretKey,
        held,
        notify,
        guards,
        rateLimiter,
      });
      let recordTx: RecordTx | undefined;
      try {
        const ctx = new RecordContext({
          job: job.name,
          params,
          shard: letter.shard,
          fencingToken: lease.token,
          position: letter.position,
          state: structuredClone(job.initialState?.({ params, shard: letter.shard }) ?? {}) as JsonObject,
          signal: new AbortController().signal,
          log: eventLogger(letter.shard, (data) => options.onEvent?.({ type: 'log', at: Date.now(), job: job.name, instanceId: instance.id, data })),
          sql: () => {
            if (tx.sql === undefined) return undefined;
            recordTx ??= new RecordTx(new Baton(), chunk, tx.sql, false);
            return recordTx;
          },
          effects,
        });
        // A letter is processed in a transaction of its own: it gets what setup() prepares too.
        await runSetup(job, { params, shard: letter.shard, state: ctx.state, tx });
        await job.process(letter.record, ctx);
        await ctx.durable();
        await recordTx?.finish(true);
        if (tx.sql !== undefined) await chunk.buffer.flush(tx.sql);
        if (!(await store.resolveDeadLetter(tx, letter.id))) {
          result.alreadyResolved.push(letter);
          continue;
        }
        result.resolved.push(letter);
        await emit('dlq:retry', { shard: letter.shard, id: letter.id, position: letter.position, outcome: 'resolved' });
      } catch (error) {
        await recordTx?.finish(false).catch(() => undefined);
        await store.rollback(tx).catch(() => undefined);
        // As the letter stores it (cut at 32 KiB), for its dlq:retry event too.
        const described = storableError(describeJobError(error, jobFileOf(job)));
        await store.noteDeadLetterRetry(letter.id, described);
        result.failed.push({ letter, error: described });
        await emit('dlq:retry', { shard: letter.shard, id: letter.id, position: letter.position, outcome: 'failed', error: described });
      }
    }
  };
  try {
    await retryLetters();
  } finally {
    await leases.release();
  }
  return result;
}
