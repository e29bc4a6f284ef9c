import type { EventMap, EventType } from '../../events.ts';
import type { Lease, ShardInfo, Store, Tx } from '../../store/store.ts';
import type { EffectGuard } from '../guard/effect-guard.ts';
import type { RateLimiter } from '../guard/rate-limiter.ts';
import { type ChunkWrites, dialectOf } from '../tx/record-tx.ts';
import { WriteBuffer } from '../tx/write-buffer.ts';
import { type EffectGuards, Effects } from './effects.ts';

/** What a pass over one shard outside any run works with: its transaction, `ctx.tx`'s writes, its effects. */
export interface OutsideRun {
  /** The lease the pass was given (`held`), else the shard's current token, claimed by no one: no run row, no heartbeat (`runId` 0). */
  lease: Lease;
  tx: Tx;
  chunk: ChunkWrites;
  effects: Effects;
}

/**
 * Begins a pass over `shard` that is no run (`ckpt dlq --retry`, `ckpt plan`): its effects'
 * events name no run; its `ctx.tx` writes go into one transaction of the store, which the caller
 * commits or rolls back. With `held` (a lease the caller took with LeaseStore.leaseShard, as
 * `ckpt dlq --retry` does), its effects are fenced by that lease as a run's are: once another
 * took the shard, no intent is written and no `fn` starts. Without (`ckpt plan`, which performs
 * none), unfenced.
 */
export async function beginOutsideRun(input: {
  store: Store;
  instance: { id: number; generation: number };
  shard: Pick<ShardInfo, 'id' | 'name' | 'leaseToken'>;
  job: string;
  /** Who the pass says it is: the worker's name, or what it is for (`plan`). */
  worker: string;
  secretKey: () => Buffer;
  notify: <K extends EventType>(type: K, data: EventMap[K]) => void;
  guard?: EffectGuard;
  /** The job's effect limits and approvals: effects performed outside a run count against them as a run's do. */
  guards?: EffectGuards;
  /** The job's fleet rate limits: an effect naming a `target` takes a token before `fn`, as in a run. */
  rateLimiter?: RateLimiter;
  /** The shard's lease the pass holds (see above), and whether its heartbeat found it lost. */
  held?: { lease: Lease; lost: () => boolean };
}): Promise<OutsideRun> {
  const { store, instance, shard, held } = input;
  const lease: Lease = held?.lease ?? {
    instanceId: instance.id,
    generation: instance.generation,
    shardId: shard.id,
    shard: shard.name,
    worker: input.worker,
    token: shard.leaseToken,
    runId: 0,
    leaseMs: 0,
  };
  const effects = new Effects({
    store,
    scope: { instanceId: instance.id, generation: instance.generation },
    job: input.job,
    shard: shard.name,
    runId: null,
    secretKey: input.secretKey,
    notify: input.notify,
    guard: input.guard,
    ...(held === undefined
      ? {}
      : { fence: { shardId: held.lease.shardId, token: held.lease.token, shard: held.lease.shard, runId: held.lease.runId }, leaseLost: held.lost }),
    ...(input.guards === undefined ? {} : { guards: input.guards }),
    ...(input.rateLimiter === undefined ? {} : { rateLimiter: input.rateLimiter }),
  });
  const tx = await store.begin(lease);
  return { lease, tx, chunk: { tx: () => tx, buffer: new WriteBuffer(dialectOf(tx.sql)) }, effects };
}
