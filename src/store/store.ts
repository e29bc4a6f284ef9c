import type { JsonObject, JsonValue } from '../json.ts';
import type { NewPlan, PlanApproval, StoredPlan, TokenGrant } from './plan-types.ts';
import type {
  ApprovalOutcome,
  ChainHead,
  Checkpoint,
  CheckpointWrite,
  Completion,
  DeadLetter,
  EffectCount,
  EffectEntry,
  EffectScope,
  FailureHistory,
  HolderInfo,
  HoldInfo,
  InstanceInfo,
  InstanceStatus,
  JournalFence,
  JournalOutcome,
  JournalWrite,
  LatestCheckpoint,
  Lease,
  LiveRun,
  NewApproval,
  NewDeadLetter,
  NewEvent,
  NewHold,
  ProgressMark,
  RunInfo,
  RunOutcome,
  RunProgress,
  ShardInfo,
  ShardInputs,
  StoredEvent,
  Tx,
} from './store-types.ts';

export type * from './plan-types.ts';
export type * from './store-types.ts';

// The Store contract, one interface per concern. Every backend (src/store/<backend>/) has one
// file per concern, `<backend>-<concern>.ts`, implementing the matching interface; the store
// class composes them (see ComposedStore). Times are epoch milliseconds.

/** Opening, migrating and closing a store. */
export interface StoreLifecycle {
  /** A short human name for messages: the path or the URL without its password. */
  readonly location: string;
  /** Create or upgrade the schema; refuse (SchemaTooNewError) a schema newer than this code understands. */
  migrate(): Promise<void>;
  /** Release connections; every later call fails; a second close does nothing. */
  close(): Promise<void>;
}

/** Job instances and their shards. */
export interface InstanceStore {
  /** Find or create the instance of (job, paramsHash). */
  instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo>;
  /**
   * New generation from the beginning (old history stays); with `fromGeneration`, only if still at it, so two resets make one;
   * with `carry`, each completed shard starts the new generation at its last checkpoint (position, state, inputs; count 0).
   */
  resetInstance(instanceId: number, fromGeneration?: number, options?: { carry?: boolean }): Promise<InstanceInfo>;
  /** Instances of a job (every job when omitted), newest first. */
  listInstances(job?: string): Promise<InstanceInfo[]>;
  /** Create the shards of the instance's current generation that do not exist yet. */
  ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]>;
  /** Shards of the instance's current generation. */
  listShards(instanceId: number): Promise<ShardInfo[]>;
  /** Record the inputs (fingerprint, version, params hash) the shard's checkpoints are made from. */
  setInputs(lease: Lease, inputs: ShardInputs): Promise<void>;
  /**
   * Mark the instance completed if every shard of its generation is: 'now' for the one call that
   * did (it alone records the completion), 'before' when it already was, false when shards remain.
   */
  completeIfDone(instanceId: number, generation: number): Promise<Completion>;
}

/** Leases on shards, and the fencing tokens they carry. */
export interface LeaseStore {
  /**
   * Mark crashed (and free the shard of) every running run whose lease expired or whose worker
   * `isDead` by its label and node (interrupted, if its last progress mark is exact: it stopped at once on purpose); returns them.
   * Never a run whose worker `isAlive` (proved running on this machine, e.g. stopped): it is not
   * crashed, whatever its lease says; a claim still takes its expired lease and fences it.
   */
  reapCrashed(
    instanceId: number,
    isDead: (worker: string, node: string | null) => boolean,
    isAlive?: (worker: string, node: string | null) => boolean,
  ): Promise<RunInfo[]>;
  /** Claim an unfinished shard that is free or whose lease expired: new token, new run row (recording `node`, where the worker runs). */
  claim(instance: InstanceInfo, worker: string, leaseMs: number, node?: string): Promise<Lease | null>;
  /**
   * Take one shard's lease outside any run (`ckpt dlq --retry`), if it is free or its lease has
   * expired: a new token, so a run that held it is fenced from then on (its journal writes and
   * checkpoints refused, and it is no longer live to LeaseStore.liveRunOrFence); no run row
   * (`runId` 0); the shard's status unchanged, completed or not. Null while another lease
   * that has not expired holds it. The shard then names no run (its run that had the lease is
   * neither live nor the one whose crash frees the shard). `heartbeat` extends it and `release`
   * frees it, as a run's (with `runId` 0 they write no run).
   */
  leaseShard(instance: Pick<InstanceInfo, 'id' | 'generation'>, shard: { id: number; name: string }, worker: string, leaseMs: number): Promise<Lease | null>;
  /** Unfinished shards held by a lease that has not expired. */
  holders(instanceId: number): Promise<HolderInfo[]>;
  /**
   * Run `runId` while it holds its shard under a lease that has not expired (on the store's
   * clock). Once that lease has expired, the lease is ended for good, as a claim would end it: a
   * new token, the shard free to claim, so the run, should its process wake, is fenced (no journal
   * write, no checkpoint; its heartbeat finds the lease lost) and undefined is answered. Undefined
   * too once the run ended, was reaped, or another run took the shard. What a claim that meets
   * another run's intent asks before it may act on it (Effects).
   */
  liveRunOrFence(runId: number): Promise<LiveRun | undefined>;
  /** Extend the lease and record progress; false: the lease is lost (another token), stop. */
  heartbeat(lease: Lease, progress: RunProgress): Promise<boolean>;
  /**
   * Durably record the run's progress mark, at once and apart from any open tx (a SIGKILL must
   * not take it with the chunk): after a crash the records to redo are known to be at most
   * `ceiling` minus the checkpoint's count.
   */
  markProgress(lease: Lease, mark: ProgressMark): Promise<void>;
  /** The run that held the shard before this lease, if any. */
  previousRun(lease: Lease): Promise<RunInfo | undefined>;
  /** End the run with an outcome and free the shard's lease (if this lease still holds it). */
  release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void>;
  /**
   * Wait, holding nothing, until a shard of the instance may have become claimable or complete:
   * woken by the store where it can tell (PostgreSQL's NOTIFY on release and reap, and the
   * earliest lease's expiry), else after `ms`; returns early on `signal`.
   */
  waitForChange(instanceId: number, ms: number, signal?: AbortSignal): Promise<void>;
  /** Now on the clock the store stamps leases and checkpoints with (the database's; this machine's for SQLite), epoch ms. */
  now(): Promise<number>;
}

/** Checkpoints, and the job's transaction (`ctx.tx`) that commits with them. */
export interface CheckpointStore {
  /** Newest checkpoint of the shard whose checksum verifies. */
  latest(lease: Lease): Promise<LatestCheckpoint>;
  /** Open the transaction that `ctx.tx` writes into and the next checkpoint commits. */
  begin(lease: Lease): Promise<Tx>;
  /** Commit checkpoint + run progress + the tx's writes atomically (`complete`: the shard too); FencedError, nothing committed, on a stale token. */
  commit(tx: Tx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint>;
  /** Discard everything written through the tx since the last commit. */
  rollback(tx: Tx): Promise<void>;
}

/**
 * The effect journal behind `ctx.once`: durable at once, apart from any open tx. Each write
 * appends its events to the instance's event log in the same transaction, so the journal and
 * the audit trail never disagree, whatever moment a crash picks.
 */
export interface EffectJournal {
  /** The effect journal entry of `key`, if any. */
  effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined>;
  /**
   * Durably apply `writes` (all of instance `instanceId`, no key twice) in one transaction, their
   * events in one append to the instance's chain, in the writes' order; all or nothing. Answers
   * one outcome per write (see JournalOutcome). With `fence`, the same transaction reads the
   * shard row's token: if it is no longer `fence.token`, the batch is written as fenceBatch says.
   */
  journal(instanceId: number, writes: readonly JournalWrite[], fence?: JournalFence): Promise<JournalOutcome[]>;
  /** Durably record that `key`'s effect is about to run (a one-write `intent` batch). */
  effectIntent(scope: EffectScope, key: string, events?: NewEvent[]): Promise<void>;
  /** Durably record that `key`'s effect ran, and its JSON result (a one-write `done` batch). */
  effectDone(scope: EffectScope, key: string, result: JsonValue | null, events?: NewEvent[]): Promise<void>;
  /** Durably forget an intent whose effect failed without effect, so a retry runs it again (a one-write `failed` batch). */
  effectFailed(scope: EffectScope, key: string, events?: NewEvent[]): Promise<void>;
}

/** What a backend implements of the journal; the single writes are batches of one (composed-store.ts). */
export type EffectJournalParts = Pick<EffectJournal, 'effect' | 'journal'>;

/** Records that exhausted their retries. */
export interface DeadLetterStore {
  /** Add a dead letter through the tx: it commits with the checkpoint that covers its record. */
  addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void>;
  /** Dead letters of the lease's shard (this generation), as of the last commit. */
  countDeadLetters(lease: Lease): Promise<number>;
  /**
   * Dead letters of the instance's current generation, oldest first; with `newest`, only the
   * newest that many (what a view shows, read without reading every letter).
   */
  listDeadLetters(instanceId: number, newest?: number): Promise<DeadLetter[]>;
  /** How many dead letters the instance's current generation holds. */
  countInstanceDeadLetters(instanceId: number): Promise<number>;
  /** Delete the letter and commit the tx (a successful retry); false, tx rolled back, when another process retried it first. */
  resolveDeadLetter(tx: Tx, id: number): Promise<boolean>;
  /** Record a failed retry of a dead letter: its new error and one more attempt. */
  noteDeadLetterRetry(id: number, error: string): Promise<void>;
}

/** What happened: the event log, runs, and the summaries behind `ckpt status/runs/events`. */
export interface HistoryStore {
  /** Append to the instance's event log, linked into its hash chain; durable when it resolves, never part of the job's open tx. */
  appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void>;
  /** The instance's events, oldest first (by id, the chain's order), after `afterId`. */
  listEvents(instanceId: number, options?: { afterId?: number; limit?: number }): Promise<StoredEvent[]>;
  /** The last link of the instance's event chain, if it has one. */
  chainHead(instanceId: number): Promise<ChainHead | undefined>;
  /**
   * Refuses (StoreIdentityError, exit 4) a writer whose secret key may not extend the instance's
   * chain (keyed with another key, or with one this process lacks), before it writes anything.
   * SQLite checks its key record instead, when the run loads its key (a no-op here).
   */
  checkChainKey(instanceId: number): Promise<void>;
  /** Running time and crashed runs of the instance over all its runs (feeds the auto interval's MTBF). */
  failureHistory(instanceId: number): Promise<FailureHistory>;
  /** Runs of the instance (all generations), newest first. */
  listRuns(instanceId: number, options?: { limit?: number }): Promise<RunInfo[]>;
  /** Summary of an instance for `ckpt status`. */
  status(instanceId: number): Promise<InstanceStatus>;
}

/** Plans made by `ckpt plan` and applied by `ckpt apply`, and their approvals. */
export interface PlanStore {
  /** Store a plan (one already stored with the same hash is answered as it is, approvals kept). */
  savePlan(plan: NewPlan): Promise<StoredPlan>;
  /** The plan of that id, if any. */
  plan(id: string): Promise<StoredPlan | undefined>;
  /** Add an approval to the plan (a second approval by the same `by` replaces the first); the plan as it now is. */
  approvePlan(id: string, approval: PlanApproval): Promise<StoredPlan | undefined>;
}

/**
 * Token buckets shared by every worker on the store (`rateLimits` of a job): durable at once,
 * apart from any open tx, each take one short transaction.
 */
export interface RateBucketStore {
  /**
   * Take up to `want` tokens from bucket `name`, which refills at `perSecond` up to `burst`
   * tokens, on the store's clock; a new bucket starts full.
   */
  takeTokens(name: string, perSecond: number, burst: number, want: number): Promise<TokenGrant>;
}

/**
 * Guards on an instance generation: effect limits' counts (kept by the journal's claims, see
 * EffectLimit), holds, and the approvals that release them. Approvals and releases are chained
 * audit events written in the same transaction as the rows they record.
 */
export interface GuardStore {
  /**
   * Open the hold `hold.name` (or keep it open as it is), appending `events` only when this call
   * opened it (`opened`); answers the hold as stored.
   */
  hold(instanceId: number, generation: number, hold: NewHold, events: NewEvent[]): Promise<{ hold: HoldInfo; opened: boolean }>;
  /** The generation's holds, open and released, by name. */
  holds(instanceId: number, generation: number): Promise<HoldInfo[]>;
  /**
   * Record `approval` of the open hold of its name (a `guard:approved` event); the approval that
   * makes `required` distinct approvers releases it (`guard:released`), raising a limit by the
   * agreed raise. One transaction.
   */
  approve(instanceId: number, generation: number, approval: NewApproval): Promise<ApprovalOutcome>;
  /** The generation's effect counts by kind. */
  effectCounts(instanceId: number, generation: number): Promise<EffectCount[]>;
}

/**
 * Where checkpoints, runs, events, the effect journal and dead letters live: every concern in
 * one type, which is what the runner and the CLI take. One test suite
 * (test/store-contract*.test.ts) runs against every backend.
 */
export type Store = StoreLifecycle &
  InstanceStore &
  LeaseStore &
  CheckpointStore &
  EffectJournal &
  DeadLetterStore &
  HistoryStore &
  PlanStore &
  RateBucketStore &
  GuardStore;
