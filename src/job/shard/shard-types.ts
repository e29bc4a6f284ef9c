import type { EventMap, EventType } from '../../events.ts';
import type { JsonValue } from '../../json.ts';
import type { Lease, RunOutcome, Store, StoredPlan } from '../../store/store.ts';
import type { AnyJob } from '../define.ts';
import type { RateLimiter } from '../guard/rate-limiter.ts';
import type { CheckpointPolicy } from '../policy/policy.ts';
import type { RetryPolicy } from '../policy/retry.ts';
import type { Emit } from '../record/record-run.ts';
import type { OnDrift } from './drift.ts';

// What a shard run takes and what it ends with: read by the run's start (shard-run.ts), its end
// (shard-end.ts) and the runner.

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
  /** Read past the source's head, waiting for more (follow mode). */
  follow?: boolean;
  /** `ckpt apply`: the plan whose effects alone are performed (others are held). */
  plan?: StoredPlan;
  /** The job's fleet rate limits, shared by the process's shard runs. */
  rateLimiter?: RateLimiter;
  /** The instance's records (every shard's `size()` summed), asked once per process: what `maxPercent` limits are a share of. */
  instanceTotal: () => Promise<number | undefined>;
}
