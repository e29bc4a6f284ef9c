import type { JsonObject, JsonValue } from '../json.ts';

/** Outcome of one run (one attempt at a shard by one process). */
export type RunOutcome = 'running' | 'completed' | 'failed' | 'interrupted' | 'crashed' | 'lost';

export interface InstanceInfo {
  id: number;
  job: string;
  paramsHash: string;
  /** The params as shown to people (secrets redacted). */
  params: JsonObject;
  /** Bumped by `--rerun` and `reset`: a new generation starts from the beginning. */
  generation: number;
  status: 'open' | 'completed';
  version: string | null;
  createdAt: number;
  completedAt: number | null;
}

export interface ShardInfo {
  id: number;
  instanceId: number;
  generation: number;
  name: string;
  status: 'pending' | 'running' | 'completed';
  leaseOwner: string | null;
  leaseToken: number;
  leaseExpiresAt: number;
  checkpointSeq: number;
  processed: number;
  fingerprint: string | null;
  version: string | null;
  /** Hash of the params the shard's checkpoints were made with. */
  paramsHash: string | null;
  updatedAt: number;
}

/** What a shard's checkpoints were made from; a resume under other inputs is drift. */
export interface ShardInputs {
  fingerprint: string | null;
  version: string | null;
  paramsHash: string;
}

/** Which effect journal an effect key belongs to: one per instance generation. */
export interface EffectScope {
  instanceId: number;
  generation: number;
}

/** An effect key's journal entry: `intent` = fn may have run (in doubt after a crash); `done` = it ran. */
export interface EffectEntry {
  key: string;
  status: 'intent' | 'done';
  result: JsonValue | null;
  /** How many times fn was started for this key. */
  attempts: number;
  updatedAt: number;
}

/** A record that exhausted its retries and was skipped. */
export interface DeadLetter {
  id: number;
  instanceId: number;
  generation: number;
  shard: string;
  position: JsonValue | null;
  record: JsonValue;
  error: string;
  attempts: number;
  runId: number | null;
  createdAt: number;
}

export type NewDeadLetter = Pick<DeadLetter, 'position' | 'record' | 'error' | 'attempts'>;

/**
 * A run's durable promise about its progress: it starts no record past shard total `ceiling`
 * before it writes a higher mark. `step` is how many records the mark allowed past the previous
 * one; 0 says `ceiling` is the exact count, written by a run stopping at once on purpose.
 */
export interface ProgressMark {
  ceiling: number;
  step: number;
}

/** A time-limited claim of one shard by one worker; `token` fences every write it makes. */
export interface Lease {
  instanceId: number;
  generation: number;
  shardId: number;
  shard: string;
  worker: string;
  token: number;
  runId: number;
  leaseMs: number;
}

/** Durable progress of a shard: the last record whose work is done, and the state after it. */
export interface Checkpoint {
  seq: number;
  position: JsonValue | null;
  state: JsonObject;
  processed: number;
  createdAt: number;
}

export interface LatestCheckpoint {
  /** Newest checkpoint whose checksum verifies; undefined: start from the beginning. */
  checkpoint: Checkpoint | undefined;
  /** Newer checkpoints that failed their checksum and were passed over. */
  corrupt: number[];
}

export interface RunInfo {
  id: number;
  instanceId: number;
  generation: number;
  shard: string;
  worker: string;
  startedAt: number;
  endedAt: number | null;
  heartbeatAt: number;
  outcome: RunOutcome;
  resumedFrom: JsonValue | null;
  /** Shard total processed when this run started (its resume point). */
  startProcessed: number;
  /** Records this run finished. */
  processed: number;
  /** Shard total at the last heartbeat: how far a crashed run got, at least. */
  markProcessed: number;
  /**
   * The shard total this run promised not to pass without writing a higher mark (see
   * `markProgress`): how far a crashed run got, at most. Null before its first mark.
   */
  markCeiling: number | null;
  /** Records between two marks when the last was written (0: the ceiling is the exact count). */
  markStep: number | null;
  rework: number | null;
  checkpoints: number;
  checkpointMs: number;
  stats: JsonObject;
  error: string | null;
}

/** Progress numbers a run reports with its heartbeat, its checkpoints and its end. */
export interface RunProgress {
  processed?: number;
  markProcessed?: number;
  markCeiling?: number;
  markStep?: number;
  rework?: number;
  resumedFrom?: JsonValue | null;
  checkpoints?: number;
  checkpointMs?: number;
  stats?: JsonObject;
  error?: string | null;
}

export interface StoredEvent {
  id: number;
  instanceId: number;
  generation: number;
  runId: number | null;
  shard: string | null;
  type: string;
  at: number;
  data: JsonObject;
}

export interface NewEvent {
  runId?: number | null;
  shard?: string | null;
  type: string;
  at?: number;
  data: JsonObject;
}

/** The SQL a job runs through `ctx.tx`: inside the transaction that commits its checkpoint. */
export interface SqlHandle {
  /** Which SQL this is, for jobs that run on either store (placeholders, DDL). */
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs one statement; `?` placeholders on SQLite, `$1` on PostgreSQL. */
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: Row[]; rowCount: number }>;
}

/** The open unit of work between two checkpoints of one shard. */
export interface Tx {
  readonly lease: Lease;
  /** The job's SQL, or undefined where the store has no SQL (memory). */
  readonly sql: SqlHandle | undefined;
  savepoint(name: string): Promise<void>;
  releaseSavepoint(name: string): Promise<void>;
  rollbackToSavepoint(name: string): Promise<void>;
}

/** How often an instance's runs crash: the evidence for the auto policy's MTBF. */
export interface FailureHistory {
  /** Total time the instance's runs spent running (all generations), ms. */
  runningMs: number;
  /** Runs found dead (outcome 'crashed'). */
  crashed: number;
}

export interface HolderInfo {
  shard: string;
  worker: string;
  expiresAt: number;
}

export interface InstanceStatus {
  instance: InstanceInfo;
  shards: { total: number; completed: number; running: number };
  processed: number;
  lastCheckpointAt: number | null;
  holders: HolderInfo[];
}

/**
 * Where checkpoints, runs, events, the effect journal and dead letters live. Every backend
 * implements this contract and one test suite (test/store-contract*.test.ts) runs against each.
 * Times are epoch milliseconds.
 */
export interface Store {
  /** A short human name for messages: the path or the URL without its password. */
  readonly location: string;
  /** Create or upgrade the schema; refuse a schema newer than this code understands. */
  migrate(): Promise<void>;
  /** Release connections; every later call fails. */
  close(): Promise<void>;

  /** Find or create the instance of (job, paramsHash). */
  instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo>;
  /**
   * Start a new generation of the instance from the beginning; old history stays. With
   * `fromGeneration`, only if the instance is still at that generation (else it is returned as it
   * is): two processes resetting at the same moment start one new generation, not two.
   */
  resetInstance(instanceId: number, fromGeneration?: number): Promise<InstanceInfo>;
  /** Instances of a job (every job when omitted), newest first. */
  listInstances(job?: string): Promise<InstanceInfo[]>;
  /** Create the shards of the instance's current generation that do not exist yet. */
  ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]>;
  /** Shards of the instance's current generation. */
  listShards(instanceId: number): Promise<ShardInfo[]>;
  /** Record a shard's source fingerprint (the first run sets it; drift checks compare to it). */
  setFingerprint(lease: Lease, fingerprint: string | null): Promise<void>;
  /** Record the inputs (fingerprint, version, params hash) the shard's checkpoints are made from. */
  setInputs(lease: Lease, inputs: ShardInputs): Promise<void>;

  /**
   * Mark as crashed every running run of the instance whose lease expired or whose worker
   * `isDead` says is gone (as interrupted if its last progress mark says it stopped on purpose),
   * and free its shard. Returns the runs it marked.
   */
  reapCrashed(instanceId: number, isDead: (worker: string) => boolean): Promise<RunInfo[]>;
  /** Claim an unfinished shard that is free or whose lease expired: new token, new run row. */
  claim(instance: InstanceInfo, worker: string, leaseMs: number): Promise<Lease | null>;
  /** Unfinished shards held by a lease that has not expired. */
  holders(instanceId: number): Promise<HolderInfo[]>;
  /** Extend the lease and record progress; false: the lease is lost (another token), stop. */
  heartbeat(lease: Lease, progress: RunProgress): Promise<boolean>;
  /**
   * Durably record the run's progress mark, at once and apart from any open tx (a SIGKILL must
   * not take it with the chunk): after a crash the records to redo are known to be at most
   * `ceiling` minus the checkpoint's count. A run reaped with a `step` 0 mark is 'interrupted'.
   */
  markProgress(lease: Lease, mark: ProgressMark): Promise<void>;
  /** Newest checkpoint of the shard whose checksum verifies. */
  latest(lease: Lease): Promise<LatestCheckpoint>;
  /** The run that held the shard before this lease, if any. */
  previousRun(lease: Lease): Promise<RunInfo | undefined>;

  /** Open the transaction that `ctx.tx` writes into and the next checkpoint commits. */
  begin(lease: Lease): Promise<Tx>;
  /**
   * Commit the checkpoint, the run's progress and everything written through the tx, atomically,
   * and keep the last few checkpoints as history. With `complete`, the shard is finished too.
   * Throws FencedError (and commits nothing) when the lease's token is no longer the shard's.
   */
  commit(tx: Tx, checkpoint: Omit<Checkpoint, 'seq' | 'createdAt'>, run: RunProgress & { complete?: boolean }): Promise<Checkpoint>;
  /** Discard everything written through the tx since the last commit. */
  rollback(tx: Tx): Promise<void>;
  /** End the run with an outcome and free the shard's lease (if this lease still holds it). */
  release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void>;
  /** Mark the instance completed if every shard of its generation is. */
  completeIfDone(instanceId: number, generation: number): Promise<boolean>;

  /** The effect journal entry of `key`, if any. */
  effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined>;
  /** Durably record that `key`'s effect is about to run, at once and apart from any open tx. */
  effectIntent(scope: EffectScope, key: string): Promise<void>;
  /** Durably record that `key`'s effect ran and its JSON result, at once and apart from any open tx. */
  effectDone(scope: EffectScope, key: string, result: JsonValue | null): Promise<void>;
  /** Durably forget an intent whose effect failed without effect, so a retry runs it again. */
  effectFailed(scope: EffectScope, key: string): Promise<void>;

  /** Add a dead letter through the tx: it commits with the checkpoint that covers its record. */
  addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void>;
  /** Dead letters of the lease's shard (this generation), as of the last commit. */
  countDeadLetters(lease: Lease): Promise<number>;
  /** Dead letters of the instance's current generation, oldest first. */
  listDeadLetters(instanceId: number): Promise<DeadLetter[]>;
  /**
   * Delete the dead letter and commit everything written through the tx (a successful retry).
   * False when the letter was already gone (another process retried it first): then the tx is
   * rolled back, so its writes are not committed a second time.
   */
  resolveDeadLetter(tx: Tx, id: number): Promise<boolean>;
  /** Record a failed retry of a dead letter: its new error and one more attempt. */
  noteDeadLetterRetry(id: number, error: string): Promise<void>;

  /** Append to the instance's event log. */
  appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void>;
  /** The instance's events, oldest first, after `afterId`. */
  listEvents(instanceId: number, options?: { afterId?: number; limit?: number }): Promise<StoredEvent[]>;
  /** Running time and crashed runs of the instance over all its runs (feeds the auto interval's MTBF). */
  failureHistory(instanceId: number): Promise<FailureHistory>;
  /** Runs of the instance (all generations), newest first. */
  listRuns(instanceId: number, options?: { limit?: number }): Promise<RunInfo[]>;
  /** Summary of an instance for `ckpt status`. */
  status(instanceId: number): Promise<InstanceStatus>;
}
