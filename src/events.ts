import type { JsonValue } from './json.ts';

/**
 * Everything a run reports, by type. The CLI's progress bar, its JSON lines, the stored event
 * log and any listener of `runJob` read this one map; `persistedEvents` says which are stored.
 */
export interface EventMap {
  'run:start': { shard: string; worker: string; runId: number; total: number | undefined };
  'run:resume': {
    shard: string;
    worker: string;
    runId: number;
    position: JsonValue | null;
    processed: number;
    rework: number;
    reworkAtMost: boolean;
    total: number | undefined;
  };
  /** `processed`: how far the run got (with `atMost`, a bound from its progress mark). */
  'run:crashed': { shard: string; worker: string; runId: number; processed: number; atMost?: boolean };
  /** `recordedBy`: written by another worker, for a run that completed its shard and was gone before it said so. */
  'run:end': { shard: string; runId: number; outcome: string; processed: number; position: JsonValue | null; error?: string; recordedBy?: string };
  checkpoint: { shard: string; seq: number; position: JsonValue | null; processed: number; records: number; ms: number };
  /** `wroteTx`: those of `skipped` whose chunk wrote through ctx.tx; unless `--on-drift resume`, the run is then `refused`. */
  'checkpoint:corrupt': { shard: string; skipped: number[]; usedSeq: number | null; wroteTx?: number[]; refused?: boolean };
  /** `processed` counts the records in flight too (`inFlight` of them), so a bar never stalls on a slow record. */
  progress: { shard: string; processed: number; inFlight: number; total: number | undefined; rate: number; lastCheckpointAt: number };
  'record:error': { shard: string; position: JsonValue; error: string };
  'record:retry': { shard: string; position: JsonValue; attempt: number; delayMs: number; error: string };
  'record:dead': { shard: string; position: JsonValue; attempts: number; error: string; deadLetters: number; limit: number };
  /** `fn` of `ctx.once` is about to run (its intent is journaled in the same transaction). */
  'effect:start': { shard: string; key: string; attempt: number };
  /** `fn` returned; its completion is journaled in the same transaction. */
  'effect:done': { shard: string; key: string };
  /** `fn` threw: treated as not done, its intent is forgotten so a retry runs it again. */
  'effect:failed': { shard: string; key: string; error: string };
  'effect:in-doubt': { shard: string; key: string; attempts: number; resolution: 'verified-done' | 'verified-not-done' | 'run-again' };
  /** The effect's `verify` answered for a key in doubt: done (settled, not run again) or not (run again). */
  'effect:verified': { shard: string; key: string; done: boolean };
  /**
   * A claim found the key's intent written by another run that still holds its lease (two shards
   * sharing a key, on two workers): the effect is in flight there, so this record waits for it
   * instead of acting on it. Told once a wait passes 5 s, with the run, shard and worker waited on.
   */
  'effect:waiting': { shard: string; key: string; holderRunId: number; holderShard: string; holderWorker: string; waitedMs: number };
  /**
   * A worker whose lease was taken while its effect ran completed it late (its fencing token is
   * stale): `first` kept the result another run recorded, `late` recorded this one over an
   * intent (the effect did happen). `runId`: the late run; `holderRunId`: the shard's run now.
   */
  'effect:late-completion': { shard: string; key: string; runId: number | null; holderRunId: number | null; kept: 'first' | 'late' };
  /**
   * A guard holds the instance generation (`hold`: `limit:<kind>` or `point:<name>`): the next
   * effect of a kind would pass its limit (`used` of `max` + `raised` started), or the job reached
   * an approval point. `next`: the command that releases it.
   */
  'guard:held': {
    shard: string;
    hold: string;
    round: number;
    required: number;
    kind?: string;
    used?: number;
    max?: number;
    raised?: number;
    summary?: string;
    next: string;
  };
  /** One approval of a hold's round: who (`by`, and the OS user beside it), why, and what (a limit's raise). */
  'guard:approved': {
    name: string;
    round: number;
    by: string;
    osUser: string | null;
    reason: string;
    raise: number | null;
    approvals: number;
    required: number;
  };
  /** The hold's round has its approvals: released (a limit raised by `raise`). */
  'guard:released': { name: string; round: number; raise: number | null; approvers: string[] };
  /** `ckpt apply`: the job asked for an effect its plan did not contain; it was not performed, and its record was set aside. */
  'effect:held': { shard: string; key: string; kind: string; scope: 'generation' | 'instance'; describe: string | null; target: string | null; plan: string };
  /** A plan was approved (`ckpt plan --approve`): by whom (and the OS user), why. */
  'plan:approved': { plan: string; by: string; osUser: string; reason: string | null; approvals: number; required: number };
  /** `migrate`: a new `version` whose `migrate` hook upgrades the checkpointed state (from `fromVersion`). */
  drift: { shard: string; changes: string[]; resolution: 'fail' | 'restart' | 'resume' | 'migrate'; fromVersion?: string | null };
  'dlq:retry': { shard: string; id: number; position: JsonValue; outcome: 'resolved' | 'failed'; error?: string };
  'shard:complete': { shard: string; processed: number };
  'shard:lost': { shard: string; token: number; reason: string };
  'instance:complete': { job: string; generation: number };
  /** A new generation starts from the beginning: `ckpt reset`, `--rerun`, or `--on-drift restart`. */
  'instance:reset': { from: number; generation: number; reason: 'reset' | 'rerun' | 'drift-restart' | 'incremental'; by: string };
  /** The store was unreachable; the call is retried after `delayMs`. */
  'store:retry': { operation: string; attempt: number; delayMs: number; error: string };
  log: { shard: string; level: 'info' | 'warn' | 'error'; message: string; data?: JsonValue };
}

export type EventType = keyof EventMap;
export type RunEvent = { [K in EventType]: { type: K; at: number; job: string; instanceId: number; data: EventMap[K] } }[EventType];
export type EventListener = (event: RunEvent) => void;

/**
 * The audit set: events that record a decision about a side effect or about what a run may
 * redo. Each is durable in the store's chained event log before the job acts on the decision
 * (every stored event is, on every store; these are the ones an auditor reads).
 */
export const auditEvents: ReadonlySet<EventType> = new Set<EventType>([
  'effect:start',
  'effect:done',
  'effect:failed',
  'effect:in-doubt',
  'effect:verified',
  'effect:late-completion',
  'effect:held',
  'plan:approved',
  'record:dead',
  'dlq:retry',
  'drift',
  'instance:reset',
  'shard:lost',
  'run:crashed',
  'guard:held',
  'guard:approved',
  'guard:released',
]);

/**
 * Events written to the store's log: the audit set and the run's milestones; the rest
 * (progress, checkpoints, logs) only reach listeners.
 */
export const persistedEvents: ReadonlySet<EventType> = new Set<EventType>([
  ...auditEvents,
  'run:start',
  'run:resume',
  'run:end',
  'checkpoint:corrupt',
  'record:error',
  'record:retry',
  'shard:complete',
  'instance:complete',
]);
