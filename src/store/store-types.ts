import type { JsonObject, JsonValue } from '../json.ts';

// The values the Store contract (store.ts) takes and returns; kept apart so the contract reads in one screen.

/** What `completeIfDone` found: completed by this call, completed before it, or not complete. */
export type Completion = 'now' | 'before' | false;

/** Outcome of one run (one attempt at a shard by one process). */
/** `held`: stopped by a guard (an effect limit, an approval point) until `ckpt approve` releases it. */
export type RunOutcome = 'running' | 'completed' | 'failed' | 'interrupted' | 'crashed' | 'lost' | 'held';

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
  /** What identified the job's code when its checkpoints were made (`job/shard/job-identity.ts`); null before it was recorded. */
  code: string | null;
  updatedAt: number;
}

/** What a shard's checkpoints were made from; a resume under other inputs is drift. */
export interface ShardInputs {
  fingerprint: string | null;
  version: string | null;
  paramsHash: string;
  /** The job's code identity (its file and its state's shape): another job of the same name must not take these checkpoints over. */
  code?: string | null;
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
  /**
   * The run that wrote the key's latest intent (or its first completion); null when none did (a
   * dead-letter retry, or an entry from before the store kept it). A claim that finds an intent
   * of another run waits while that run holds its lease (see LeaseStore.liveRunOrFence).
   */
  runId: number | null;
}

/**
 * One write of a journal batch (EffectJournal.journal); `events` are appended to the instance's
 * chain with it, under the write's `scope.generation`.
 * - `claim`: the intent of a key's first run, written only if the key has no entry; a key that
 *   has one keeps it, and nothing of the claim (not its events) is written;
 * - `intent`: a new start of a key that has an entry (in doubt, or failed): attempts + 1;
 *   a claim or an intent records `runId`, the run that writes it (EffectEntry.runId). With
 *   `over` (the in-doubt intent its caller settled by verify), written only while the key's entry
 *   is still that intent (or has none): if another run settled or restarted it first, nothing of
 *   the write (not its events) is written, and its outcome is the entry the key has now;
 * - `done`: the effect ran, with its JSON result; `failed`: forget an intent (not a done);
 * - `events`: only the events.
 */
export type JournalWrite =
  | { kind: 'claim'; scope: EffectScope; key: string; events: NewEvent[]; limit?: EffectLimit; runId?: number | null }
  | { kind: 'failed'; scope: EffectScope; key: string; events: NewEvent[]; limit?: EffectLimit }
  | { kind: 'intent'; scope: EffectScope; key: string; events: NewEvent[]; runId?: number | null; over?: IntentSeen }
  | { kind: 'done'; scope: EffectScope; key: string; result: JsonValue | null; events: NewEvent[] }
  | { kind: 'events'; scope: EffectScope; events: NewEvent[] };

/** The in-doubt intent an `intent` write starts the key over from, as its caller read it. */
export interface IntentSeen {
  attempts: number;
  runId: number | null;
}

/**
 * The lease a shard run's journal batch is written under: the store compares `token` with the
 * shard row's current token in the batch's own transaction (see fenceBatch in journal-fence.ts).
 */
export interface JournalFence {
  shardId: number;
  token: number;
  /** The shard's name and the run writing: what an `effect:late-completion` event names. */
  shard: string;
  runId: number;
}

/** What a batch's stale fencing token did to one write (see fenceBatch). */
export type JournalFenced =
  /** A claim, intent or forgotten intent: refused, nothing of it (not its events) written. */
  | { fenced: 'refused'; holderRunId: number | null }
  /** A completion: `first` kept the entry another run completed, `late` recorded it over an intent. */
  | { fenced: 'late'; holderRunId: number | null; kept: 'first' | 'late' };

/**
 * The limit a `claim` is counted against (and a `failed` gives back to): the instance's effects
 * of `kind` in `generation` (the run's, whatever the key's scope) may not pass `max` plus what
 * approvals raised it by. The store counts in the claim's own transaction, under the counter's
 * row lock, so no crash, race or second worker lets one more through.
 */
export interface EffectLimit {
  kind: string;
  max: number;
  generation: number;
}

/** A claim refused by its limit: nothing of it (not its events) was written, and `fn` must not run. */
export interface JournalLimited {
  limited: { kind: string; used: number; max: number; raised: number };
}

/**
 * A `claim`'s answer: undefined when claimed, else the entry the key already had, or JournalLimited.
 * Undefined for other writes, unless the batch's fencing token was stale (JournalFenced).
 */
export type JournalOutcome = EffectEntry | JournalFenced | JournalLimited | undefined;

/** How many effects of one kind an instance generation started, and how far approvals raised its limit. */
export interface EffectCount {
  kind: string;
  used: number;
  raised: number;
}

/**
 * A guard that holds an instance generation: `limit:<kind>` (an effect limit was reached) or
 * `point:<name>` (`ctx.approval`). Open while `releasedAt` is null; released when `required`
 * distinct approvers have approved its current `round`; a limit reached again opens the next round.
 */
export interface HoldInfo {
  instanceId: number;
  generation: number;
  name: string;
  kind: 'limit' | 'point';
  /** A limit's `{ kind, used, max, raised, shard }`, a point's `{ summary, shard }`. */
  detail: JsonObject;
  required: number;
  round: number;
  heldAt: number;
  releasedAt: number | null;
  /** The approvals of `round`, oldest first. */
  approvals: ApprovalInfo[];
}

/** One person's approval of a hold's round (also a chained `guard:approved` event). */
export interface ApprovalInfo {
  by: string;
  /** The operating-system user who ran `ckpt approve`, beside the name given. */
  osUser: string | null;
  reason: string;
  /** For a limit: how much the approver raises it by. */
  raise: number | null;
  at: number;
}

export interface NewHold {
  name: string;
  kind: 'limit' | 'point';
  detail: JsonObject;
  required: number;
}

export type NewApproval = Omit<ApprovalInfo, 'at'> & { name: string };

/**
 * What `approve` did: `recorded` (released when it was the last approval needed), or refused:
 * nothing open by that name, this approver already approved this round, or another raise is pending.
 */
export type ApprovalOutcome =
  | { outcome: 'recorded'; hold: HoldInfo; released: boolean }
  | { outcome: 'not-held'; holds: HoldInfo[] }
  | { outcome: 'already-approved'; hold: HoldInfo }
  | { outcome: 'other-raise'; hold: HoldInfo; pending: number | null };

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

/** What a commit writes: the checkpoint, and whether its chunk wrote through `ctx.tx`. */
export type CheckpointWrite = Omit<Checkpoint, 'seq' | 'createdAt'> & {
  /** The chunk behind it sent writes through `ctx.tx`: a resume from an older checkpoint would write them again. */
  wroteTx?: boolean;
};

export interface LatestCheckpoint {
  /** Newest checkpoint whose checksum verifies; undefined: start from the beginning. */
  checkpoint: Checkpoint | undefined;
  /** Newer checkpoints that failed their checksum and were passed over. */
  corrupt: number[];
  /** Those of `corrupt` whose chunk wrote through `ctx.tx` (its rows are committed: falling back would write them twice). */
  corruptWroteTx: number[];
}

export interface RunInfo {
  id: number;
  instanceId: number;
  generation: number;
  shard: string;
  worker: string;
  /** Where the worker ran (machine, PID namespace, process), as it proved at claim; null from before it was stored. */
  node: string | null;
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
  /** Its link in the instance's audit chain; null for an event written before the store had one. */
  chain: ChainLink | null;
}

/** An event's place in its instance's hash chain (see audit-chain.ts). */
export interface ChainLink {
  /** Position in the chain: 1, 2, … per instance, across generations. */
  seq: number;
  /** Hash of the event before it (64 zeros for the first). */
  prevHash: string;
  /** Hash of this event: its fields, `seq` and `prevHash`. */
  hash: string;
  /** HMAC with the store's secret key (true) or plain SHA-256 (false). */
  keyed: boolean;
}

/** The last link of an instance's chain, kept apart so that deleting the last events shows. */
export interface ChainHead {
  seq: number;
  hash: string;
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
  readonly dialect: 'sqlite' | 'postgres' | 'mysql';
  /** Runs one statement; `?` placeholders on SQLite and MySQL, `$1` on PostgreSQL. */
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

/** A run that holds its shard's lease, and where its worker runs (LeaseStore.liveRunOrFence). */
export interface LiveRun {
  runId: number;
  shard: string;
  worker: string;
  node: string | null;
}

export interface HolderInfo {
  shard: string;
  worker: string;
  /** The holding run's node (see RunInfo.node). */
  node: string | null;
  expiresAt: number;
}

export interface InstanceStatus {
  instance: InstanceInfo;
  shards: { total: number; completed: number; running: number };
  processed: number;
  lastCheckpointAt: number | null;
  holders: HolderInfo[];
}
