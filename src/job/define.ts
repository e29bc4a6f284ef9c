import type { EventListener } from '../events.ts';
import type { JsonObject } from '../json.ts';
import type { Source } from '../source/source.ts';
import { callerFile } from './code-location.ts';
import type { CheckpointSpec } from './policy/policy.ts';
import type { JobSql } from './tx/job-sql.ts';
import type { TxHandle } from './tx/record-tx.ts';

export interface JobLogger {
  info(message: string, data?: unknown): void;
  warn(message: string, data?: unknown): void;
  error(message: string, data?: unknown): void;
}

/** What `process` sees for each record. */
export interface JobContext<Params, State extends JsonObject> {
  readonly job: string;
  readonly params: Params;
  readonly shard: string;
  /** Position of this record in its shard's source. */
  readonly position: unknown;
  /**
   * Saved with every checkpoint and restored on resume; mutate it in place, and only after the
   * work that may fail: a failed attempt's `ctx.tx` writes are rolled back, its state changes are not.
   */
  readonly state: State;
  /** Aborted when the run stops (signal, lost lease, failure): finish or give up quickly. */
  readonly signal: AbortSignal;
  readonly log: JobLogger;
  /**
   * SQL inside the transaction that commits with the checkpoint covering this record. A record's
   * writes sit in their own savepoint: a failed attempt's writes are rolled back with it.
   * `insert`/`upsert`/`delete` are buffered and sent as multi-row statements before the next
   * `query` or the checkpoint's commit; a failed attempt's buffered writes are dropped.
   * `` ctx.tx.sql`… ${value}` `` binds values with the store's placeholders.
   */
  readonly tx: TxHandle;
  /**
   * Run an external effect at most once per key (per instance generation, or per instance with
   * `scope: 'instance'`): its intent is made durable before `fn` runs and its JSON result as soon
   * as it returns. A key recorded done returns its stored result without calling `fn`; a key in
   * doubt (intent, no completion: a crash fell in between) asks `verify` — `{ result }`: it
   * happened, `result` is recorded and returned; true: it happened, `undefined` is returned;
   * false: `fn` runs; anything else fails the record, the key still in doubt — and without
   * `verify` runs `fn` again, with an `effect:in-doubt` event.
   */
  once<T>(key: string, fn: () => T | Promise<T>, options?: OnceOptions<T>): Promise<T | undefined>;
  /**
   * The fencing token of this run's lease on the shard: it grows each time a worker claims the
   * shard. Pass it to a service that can refuse a stale writer (one that remembers the highest
   * token it saw): a worker paused past its lease, replaced, then woken inside `fn` is refused
   * there too. The journal already refuses its intent (`fn` never starts) and never lets its
   * late completion overwrite another's; only the service can stop a call already under way.
   */
  readonly fencingToken: number;
  /**
   * A memoised step of this record's work (an effect keyed by the record's position and `name`):
   * once finished, a replay returns its recorded result. `verify` settles a step left in doubt
   * as for `once`; return `{ result }` when later steps need the step's result.
   */
  step<T>(name: string, fn: () => T | Promise<T>, options?: OnceOptions<T>): Promise<T>;
  /** A stable key for (instance, generation, shard, position, name) to give APIs that accept one. */
  idempotencyKey(name: string): string;
  /**
   * Wait for people's approval before what follows (a destructive phase): passes if `ckpt approve
   * <job> --point <name>` released this point in the instance's generation; otherwise holds the
   * instance here (the shard stops at its last checkpoint, the run exits 7) until it does.
   */
  approval(name: string, options?: { summary?: string }): Promise<void>;
}

export interface OnceOptions<T = unknown> {
  /**
   * After a crash between the effect and its record: did it happen? `false`: no, run `fn`;
   * `true`: yes (the call returns `undefined`); `{ result }`: yes, and this is what it returned
   * (recorded, and returned as `fn`'s result would have been). Any other answer fails the
   * record and leaves the key in doubt: only `false` runs `fn` again.
   */
  verify?: () => VerifyResult<T> | Promise<VerifyResult<T>>;
  /**
   * How long the key's record lasts. `'generation'` (the default): until `--rerun` or
   * `ckpt reset` starts the instance over, after which the effect runs again with the records.
   * `'instance'`: for the instance's whole life, across reruns and resets — for effects that
   * must never repeat, such as a welcome email or a charge.
   */
  scope?: 'generation' | 'instance';
  /**
   * What kind of effect this is (`'disable'`, `'revoke'`): what a plan counts it as, and
   * the job's `limits` count it against (counted only when the job declares a limit of that kind). Default: the
   * key's prefix before its first `:` (`disable:a17` is a `disable`), or `'effect'` when it has
   * none; a step's default is its name.
   */
  kind?: string;
  /** What the effect does, in words a reviewer reads in `ckpt plan --show` (e.g. `disable ana@example.com`). */
  describe?: string;
  /**
   * The system the effect calls, named in the job's `rateLimits`: every worker on the store
   * together stays under that rate (a token is taken just before `fn` runs).
   */
  target?: string;
}

/**
 * A blast-radius limit on one kind of effect: `max` effects per instance generation, or
 * `maxPercent` of the instance's records (the sum of its shards' sources' `size()`).
 */
export type EffectLimitSpec = { max: number; maxPercent?: undefined } | { maxPercent: number; max?: undefined };

/** What `verify` answers: whether the effect happened, and optionally what it returned. */
export type VerifyResult<T> = boolean | { result: T };

/** What `setup` gets: the shard's params, name and state, and SQL in the shard's transaction. */
export interface SetupInput<Params, State extends JsonObject> {
  readonly params: Params;
  readonly shard: string;
  /** The shard's state as this run starts (restored from the checkpoint, or the initial state). */
  readonly state: State;
  /** SQL in the transaction the shard's next checkpoint commits (throws on a store without SQL). */
  readonly tx: JobSql;
}

export interface RetryOptions {
  /** Tries per record, the first included; default 1 (no retry). */
  attempts?: number;
  /** Delay before the first retry, doubled each time, with jitter; default 100 ms. */
  backoffMs?: number;
  /** Cap of the delay; default 10 s. */
  maxBackoffMs?: number;
}

export interface JobDefinition<Record, Params, State extends JsonObject, Position> {
  name: string;
  /** A stamp of the job's code: a resume under another version is drift. */
  version?: string;
  /** Parse raw `--param k=v` values; throw to reject them (the CLI exits 2). */
  params?: (raw: { [key: string]: string }) => Params;
  source: (input: { params: Params; shard: string }) => Source<Record, Position> | Promise<Source<Record, Position>>;
  /** Independent slices of the instance, each with its own checkpoint; default one shard. */
  shards?: (input: { params: Params }) => string[] | Promise<string[]>;
  /** The state a shard starts from; default `{}`. */
  initialState?: (input: { params: Params; shard: string }) => State;
  /**
   * Upgrades a state checkpointed by an earlier `version` of this job (`fromVersion`, null when
   * it had none). With it, resuming a half-done instance under a new `version` is supported: the
   * run continues from the checkpoint with the state this returns, even when the state's shape
   * or the job file changed, instead of stopping as drift. Changed params or source are still drift.
   */
  migrate?: (state: JsonObject, fromVersion: string | null) => State;
  /**
   * Runs at the start of every shard run — the first and every resume, on each worker that
   * claims a shard — before its first record, inside the transaction that the shard's next
   * checkpoint commits: create tables (`CREATE TABLE IF NOT EXISTS`), load lookups into state.
   * Write it to run again safely. A throw fails the shard run (exit 1), nothing committed.
   */
  setup?: (input: SetupInput<Params, State>) => unknown;
  checkpoint?: CheckpointSpec;
  /**
   * `ckpt run` on a completed instance starts a new generation where the last one ended (each
   * shard at its last checkpoint's position and state) instead of saying "already complete".
   * For sources whose positions stay meaningful as data is added: a key that only grows, an
   * appended file, a stream. `--rerun` still starts from the beginning.
   */
  incremental?: boolean;
  /**
   * Follow the source (a stream): at its head a shard does not complete but waits for more,
   * checkpointing while quiet, until stopped (SIGTERM: drain, checkpoint, exit 3). `ckpt run --follow` too.
   */
  follow?: boolean;
  /** Records in flight at once in one process; default 1. */
  concurrency?: number;
  retry?: RetryOptions;
  /** Dead-letter up to `limit` records per shard that exhausted their retries; past it the run fails. Default 0. */
  skip?: { limit: number };
  /**
   * Calls per second to each target system, for every worker on the store together: an effect
   * whose options name the `target` waits for a token of the target's bucket, kept in the store.
   * `burst` (default a twentieth of a second's worth, at least 1, at most `perSecond`) is how many
   * may go at once. No one-second window sees more than `perSecond` calls start: the bucket refills
   * at `perSecond - burst + 1` a second.
   */
  rateLimits?: { [target: string]: { perSecond: number; burst?: number } };
  /** `ckpt apply` of a plan of this job needs this many distinct approvers first (default 0: none). */
  plan?: { approvals?: number };
  /** Params whose values are secrets: identity uses their hash, and they show as `[redacted]`. */
  redact?: string[];
  /**
   * Blast-radius limits by effect kind (`{ disable: { max: 100 } }`): the instance's effects of a
   * kind (`ctx.once`'s `kind`, or its key's prefix) are counted by the store before each `fn`
   * runs, across shards, workers and crashes; the one that would pass the limit is not started:
   * the instance is held (exit 7) until `ckpt approve … --raise kind=+N` raises it.
   */
  limits?: { [kind: string]: EffectLimitSpec };
  /** Distinct people (`ckpt approve --by`) a hold needs before it is released; default 1. */
  approvals?: number;
  process(record: Record, ctx: JobContext<Params, State>): unknown;
}

const jobBrand = Symbol.for('checkpointed.job');
/** The file that called defineJob: errors are located by their first frame in it. */
const jobFile = Symbol.for('checkpointed.job-file');

export type Job<Record = unknown, Params = unknown, State extends JsonObject = JsonObject, Position = unknown> = Readonly<
  JobDefinition<Record, Params, State, Position>
> & { readonly [jobBrand]: true };

/** Any job, whatever its record, params, state and position types (what the runner accepts). */
// biome-ignore lint/suspicious/noExplicitAny: the runner is generic over every job's own types
export type AnyJob = Job<any, any, any, any>;

/** The longest job name (and limit kind, rate limit target) every store holds (MySQL's instances.job, effect_counts.kind and rate_buckets.name are VARCHAR(255)). */
const MAX_JOB_NAME = 255;

/** Declare a job; a job file default-exports the result. */
export function defineJob<Record, Params = { [key: string]: string }, State extends JsonObject = JsonObject, Position = unknown>(
  definition: JobDefinition<Record, Params, State, Position>,
): Job<Record, Params, State, Position> {
  if (definition === null || typeof definition !== 'object') throw new TypeError('defineJob needs an object');
  if (typeof definition.name !== 'string' || !/^[A-Za-z0-9][\w.-]*$/.test(definition.name)) {
    throw new TypeError(`defineJob: name must be letters, digits, '.', '-' or '_' (got ${JSON.stringify(definition.name)})`);
  }
  // What every store holds (MySQL's instances.job is VARCHAR(255)): a job that runs on one store runs on all.
  if (definition.name.length > MAX_JOB_NAME) {
    throw new TypeError(
      `defineJob: the name ${JSON.stringify(`${definition.name.slice(0, 40)}…`)} is ${definition.name.length} characters long; a job name has at most ${MAX_JOB_NAME}`,
    );
  }
  if (typeof definition.source !== 'function') throw new TypeError(`defineJob(${definition.name}): source must be a function`);
  if (typeof definition.process !== 'function') throw new TypeError(`defineJob(${definition.name}): process must be a function`);
  if (definition.concurrency !== undefined && !(Number.isInteger(definition.concurrency) && definition.concurrency >= 1)) {
    throw new TypeError(`defineJob(${definition.name}): concurrency must be a whole number ≥ 1`);
  }
  checkGuards(definition);
  for (const [target, limit] of Object.entries(definition.rateLimits ?? {})) {
    // A target's bucket is a row keyed by it (MySQL's rate_buckets.name is VARCHAR(255)).
    if (target.length > MAX_JOB_NAME) {
      throw new TypeError(
        `defineJob(${definition.name}): the rate limit target ${JSON.stringify(`${target.slice(0, 40)}…`)} is ${target.length} characters long; at most ${MAX_JOB_NAME}`,
      );
    }
    if (!(typeof limit?.perSecond === 'number' && limit.perSecond > 0 && Number.isFinite(limit.perSecond))) {
      throw new TypeError(`defineJob(${definition.name}): rateLimits.${target}.perSecond must be a number > 0`);
    }
    if (limit.burst !== undefined && !(Number.isInteger(limit.burst) && limit.burst >= 1)) {
      throw new TypeError(`defineJob(${definition.name}): rateLimits.${target}.burst must be a whole number ≥ 1`);
    }
    if (limit.burst !== undefined && limit.burst > Math.max(1, limit.perSecond)) {
      throw new TypeError(`defineJob(${definition.name}): rateLimits.${target}.burst must be at most perSecond (${limit.perSecond})`);
    }
  }
  const approvals = definition.plan?.approvals;
  if (approvals !== undefined && !(Number.isInteger(approvals) && approvals >= 0)) {
    throw new TypeError(`defineJob(${definition.name}): plan.approvals must be a whole number ≥ 0`);
  }
  return Object.freeze({ ...definition, [jobBrand]: true as const, [jobFile]: callerFile() });
}

function checkGuards(definition: { name: string; limits?: unknown; approvals?: unknown }): void {
  const where = `defineJob(${definition.name})`;
  if (definition.approvals !== undefined && !(Number.isInteger(definition.approvals) && (definition.approvals as number) >= 1)) {
    throw new TypeError(`${where}: approvals must be a whole number ≥ 1`);
  }
  if (definition.limits === undefined) return;
  if (definition.limits === null || typeof definition.limits !== 'object') throw new TypeError(`${where}: limits must be an object of { kind: { max } }`);
  for (const [kind, spec] of Object.entries(definition.limits)) {
    // A kind's count is a row keyed by it (MySQL's effect_counts.kind is VARCHAR(255)).
    if (kind.length > MAX_JOB_NAME)
      throw new TypeError(`${where}: the limit kind ${JSON.stringify(`${kind.slice(0, 40)}…`)} is ${kind.length} characters long; at most ${MAX_JOB_NAME}`);
    const { max, maxPercent } = (spec ?? {}) as { max?: unknown; maxPercent?: unknown };
    const wholeMax = typeof max === 'number' && Number.isSafeInteger(max) && max >= 0;
    const percent = typeof maxPercent === 'number' && maxPercent > 0 && maxPercent <= 100;
    if (wholeMax === percent || (max !== undefined && maxPercent !== undefined)) {
      throw new TypeError(`${where}: limits.${kind} needs max (a whole number ≥ 0) or maxPercent (in (0, 100]), not both`);
    }
  }
}

/** The job's file (where `defineJob` was called), if its stack said. */
export function jobFileOf(job: Job): string | undefined {
  const file = (job as { [jobFile]?: unknown })[jobFile];
  return typeof file === 'string' ? file : undefined;
}

export function isJob(value: unknown): value is Job {
  return value !== null && typeof value === 'object' && (value as { [jobBrand]?: unknown })[jobBrand] === true;
}

export type { EventListener };
