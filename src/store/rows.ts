import { firstLine, StoreError } from '../errors.ts';
import type { JsonObject, JsonValue } from '../json.ts';
import { withoutLoneSurrogates } from '../lone-surrogate.ts';
import { redactJson } from '../redact.ts';
import type {
  Checkpoint,
  DeadLetter,
  EffectEntry,
  HolderInfo,
  InstanceInfo,
  InstanceStatus,
  Lease,
  LiveRun,
  NewDeadLetter,
  RunInfo,
  RunOutcome,
  RunProgress,
  ShardInfo,
  StoredEvent,
} from './store-types.ts';

/** A row as SQL drivers return it: snake_case columns; JSON as text (SQLite) or parsed (PostgreSQL). */
export type Row = Record<string, unknown>;

/** An effect journal row (both SQL stores keep the same columns). */
export function toEffect(key: string, row: Row): EffectEntry {
  return {
    key,
    status: row.status === 'done' ? 'done' : 'intent',
    result: parseJson(row.result),
    attempts: Number(row.attempts),
    updatedAt: Number(row.updated_at),
    runId: row.run_id === null || row.run_id === undefined ? null : Number(row.run_id),
  };
}

/** LeaseStore.liveRunOrFence's answer from a row of the shard (`name`, `lease_owner`) and its run (`worker_node`). */
export function toLiveRun(runId: number, row: Row): LiveRun {
  return { runId, shard: String(row.name), worker: String(row.lease_owner), node: row.worker_node === null ? null : String(row.worker_node) };
}

/** The most of an error a dead letter keeps, in UTF-8 bytes: half of MySQL's TEXT (65,535 bytes). */
export const MAX_ERROR_BYTES = 32_768;

/**
 * An error text every backend can store. A letter that cannot be written blocks its job for good
 * (the skip limit counts a failure no one can see, every rerun meets it again), so the text gives
 * way instead: NUL, which PostgreSQL's TEXT refuses, is written `\0`; a lone surrogate becomes
 * U+FFFD; past MAX_ERROR_BYTES the text is cut at a character and a marker says how long it was.
 */
export function storableError(text: string): string {
  const clean = withoutLoneSurrogates(text.replaceAll('\0', '\\0'));
  const bytes = Buffer.byteLength(clean);
  if (bytes <= MAX_ERROR_BYTES) return clean;
  const marker = ` … [truncated: ${bytes} bytes in all]`;
  // A cut inside a character decodes to U+FFFD at the end: dropped, so the text ends on a whole one.
  const head = Buffer.from(clean)
    .subarray(0, MAX_ERROR_BYTES - Buffer.byteLength(marker))
    .toString('utf8')
    .replace(/\uFFFD$/, '');
  return `${head}${marker}`;
}

/** The values of a new dead-letter row, in the column order both SQL stores insert them. */
export function deadLetterValues(lease: Lease, letter: NewDeadLetter): (string | number | null)[] {
  return [
    lease.instanceId,
    lease.generation,
    lease.shardId,
    lease.shard,
    JSON.stringify(letter.position),
    JSON.stringify(letter.record),
    storableError(letter.error),
    letter.attempts,
    lease.runId > 0 ? lease.runId : null,
  ];
}

/** The run columns a progress report may set, by RunProgress field (JSON ones are set apart). */
export const RUN_PROGRESS_COLUMNS: readonly (readonly [keyof RunProgress, string])[] = [
  ['processed', 'processed'],
  ['markProcessed', 'mark_processed'],
  ['markCeiling', 'mark_ceiling'],
  ['markStep', 'mark_step'],
  ['rework', 'rework'],
  ['checkpoints', 'checkpoints'],
  ['checkpointMs', 'checkpoint_ms'],
  ['error', 'error'],
];

/**
 * What a reaped run's outcome is: a run whose last mark is exact (step 0) stopped on purpose,
 * at once (a second Ctrl-C), and is 'interrupted'; any other found dead is 'crashed'.
 */
export const REAPED_OUTCOME_SQL = "CASE WHEN mark_step = 0 THEN 'interrupted' ELSE 'crashed' END";

/**
 * The SET of an UPDATE of `shards` that frees a shard (a release, a reaped run, an expired lease
 * ended): no holder, no lease, pending again unless complete. Its token stays unless the caller
 * adds a new one.
 */
export const FREE_SHARD_SQL = "lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END";

/**
 * A JSON column of a row the CLI lists (an instance's params, a run's stats or resume position,
 * a dead letter's record), read for people: text that is not JSON (a hand edit, a damaged page)
 * is a damaged store, said so in one line (exit 2), not an unexpected SyntaxError.
 */
function storedJson(text: unknown, what: string): JsonValue {
  try {
    return parseJson(text);
  } catch (error) {
    throw new StoreError(
      `the store holds ${what} that ${what.endsWith('s') ? 'are' : 'is'} not JSON (${firstLine(error)}): it is damaged or was edited by hand; restore it from a backup`,
    );
  }
}

/** A JSON column that holds an object (a run's stats): other JSON there (null, a list, a number) is damage too. */
function storedObject(text: unknown, what: string): JsonObject {
  const value = storedJson(text, what);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value;
  throw new StoreError(
    `the store holds ${what} that ${what.endsWith('s') ? 'are' : 'is'} not a JSON object (${JSON.stringify(value)?.slice(0, 40)}): it is damaged or was edited by hand; restore it from a backup`,
  );
}

export function parseJson(text: unknown): JsonValue {
  if (text === null || text === undefined) return null;
  return (typeof text === 'string' ? JSON.parse(text) : text) as JsonValue;
}

export function parseCheckpoint(row: Row): Checkpoint | undefined {
  try {
    return {
      seq: Number(row.seq),
      position: parseJson(row.position),
      state: parseJson(row.state) as JsonObject,
      processed: Number(row.processed),
      createdAt: Number(row.created_at),
    };
  } catch {
    return undefined;
  }
}

export function toInstance(row: Row): InstanceInfo {
  return {
    id: Number(row.id),
    job: String(row.job),
    paramsHash: String(row.params_hash),
    // Redacted as read too: an instance stored before secret-named params were redacted at store time.
    params: redactJson(storedJson(row.params, "an instance's params")) as JsonObject,
    generation: Number(row.generation),
    status: row.status === 'completed' ? 'completed' : 'open',
    version: row.version === null ? null : String(row.version),
    createdAt: Number(row.created_at),
    completedAt: row.completed_at === null ? null : Number(row.completed_at),
  };
}

export function toShard(row: Row): ShardInfo {
  return {
    id: Number(row.id),
    instanceId: Number(row.instance_id),
    generation: Number(row.generation),
    name: String(row.name),
    status: row.status as ShardInfo['status'],
    leaseOwner: row.lease_owner === null ? null : String(row.lease_owner),
    leaseToken: Number(row.lease_token),
    leaseExpiresAt: Number(row.lease_expires_at),
    checkpointSeq: Number(row.checkpoint_seq),
    processed: Number(row.processed),
    fingerprint: row.fingerprint === null ? null : String(row.fingerprint),
    version: row.version === null ? null : String(row.version),
    paramsHash: row.params_hash === null || row.params_hash === undefined ? null : String(row.params_hash),
    code: row.code === null || row.code === undefined ? null : String(row.code),
    updatedAt: Number(row.updated_at),
  };
}

export function toRun(row: Row): RunInfo {
  return {
    id: Number(row.id),
    instanceId: Number(row.instance_id),
    generation: Number(row.generation),
    shard: String(row.shard),
    worker: String(row.worker),
    node: row.worker_node === null || row.worker_node === undefined ? null : String(row.worker_node),
    startedAt: Number(row.started_at),
    endedAt: row.ended_at === null ? null : Number(row.ended_at),
    heartbeatAt: Number(row.heartbeat_at),
    outcome: row.outcome as RunOutcome,
    resumedFrom: storedJson(row.resumed_from, "a run's resume position"),
    startProcessed: Number(row.start_processed),
    processed: Number(row.processed),
    markProcessed: Number(row.mark_processed),
    markCeiling: row.mark_ceiling === null || row.mark_ceiling === undefined ? null : Number(row.mark_ceiling),
    markStep: row.mark_step === null || row.mark_step === undefined ? null : Number(row.mark_step),
    rework: row.rework === null ? null : Number(row.rework),
    checkpoints: Number(row.checkpoints),
    checkpointMs: Number(row.checkpoint_ms),
    stats: storedObject(row.stats, "a run's stats"),
    error: row.error === null ? null : String(row.error),
  };
}

export function toDeadLetter(row: Row): DeadLetter {
  return {
    id: Number(row.id),
    instanceId: Number(row.instance_id),
    generation: Number(row.generation),
    shard: String(row.shard),
    position: storedJson(row.position, "a dead letter's position"),
    record: storedJson(row.record, "a dead letter's record"),
    error: String(row.error),
    attempts: Number(row.attempts),
    runId: row.run_id === null ? null : Number(row.run_id),
    createdAt: Number(row.created_at),
  };
}

/**
 * An event's data. Text that is not a JSON object (a hand edit, a damaged page) is kept as it is
 * stored, under `unreadable`, rather than thrown on: the log stays listable and exportable, and
 * `verifyChain` names the event, since its content no longer hashes to its link.
 */
function eventData(stored: unknown): JsonObject {
  const text = String(stored);
  try {
    const data: unknown = JSON.parse(text);
    if (data !== null && typeof data === 'object' && !Array.isArray(data)) return data as JsonObject;
  } catch {
    // kept as text below
  }
  return { unreadable: text };
}

export function toEvent(row: Row): StoredEvent {
  return {
    id: Number(row.id),
    instanceId: Number(row.instance_id),
    generation: Number(row.generation),
    runId: row.run_id === null ? null : Number(row.run_id),
    shard: row.shard === null ? null : String(row.shard),
    type: String(row.type),
    at: Number(row.at),
    data: eventData(row.data),
    chain:
      row.seq === null || row.seq === undefined
        ? null
        : { seq: Number(row.seq), prevHash: String(row.prev_hash), hash: String(row.hash), keyed: row.keyed === true || Number(row.keyed) === 1 },
  };
}

/** `ckpt status` of an instance, from its row, its current shards, its newest checkpoint time and its holders. */
export function toStatus(instance: InstanceInfo, shards: ShardInfo[], lastCheckpointAt: unknown, holders: HolderInfo[]): InstanceStatus {
  return {
    instance,
    shards: {
      total: shards.length,
      completed: shards.filter((shard) => shard.status === 'completed').length,
      running: shards.filter((shard) => shard.status === 'running').length,
    },
    processed: shards.reduce((sum, shard) => sum + shard.processed, 0),
    lastCheckpointAt: lastCheckpointAt == null ? null : Number(lastCheckpointAt),
    holders,
  };
}
