import type { JsonObject, JsonValue } from '../../json.ts';
import type { RunInfo, ShardInfo } from '../../store/store.ts';
import { combinedLag, followerLags } from '../follower-lag.ts';
import { commandsFor } from './commands.ts';
import { redactJson, redactText } from './redact.ts';
import { DEAD_LETTERS_SHOWN, type InstanceData } from './store-reader.ts';

/** Why a run the store still calls `running` is dead, or null while it looks alive. */
export type Liveness = (run: RunInfo, shard: ShardInfo | undefined, now: number) => string | null;

export interface ShardRow {
  name: string;
  status: ShardInfo['status'];
  /** Records covered by the shard's checkpoint. */
  checkpointed: number;
  /** Records done as of the holder's last heartbeat (records in flight included). */
  done: number;
  total: number | null;
  /** Records per second of the current run; null when not running. */
  rate: number | null;
  etaMs: number | null;
  /** A follower's distance to its source's head, as its heartbeat last measured it; null when not following (or dead). */
  lag: { records: number; ms: number | null; at: number } | null;
  holder: { worker: string; runId: number; heldMs: number; heartbeatAgeMs: number; leaseLeftMs: number; dead: string | null } | null;
  checkpointSeq: number;
  /** When the last checkpoint was written; null: none yet, or only by an earlier run (see checkpointSeq). */
  lastCheckpointAt: number | null;
  interval: { ms: number | null; records: number | null; reason: string | null; policy: string | null } | null;
}

export interface ShardQuery {
  offset: number;
  limit: number;
  status: 'all' | ShardInfo['status'];
  search: string;
}

const STATUS_ORDER: Record<ShardInfo['status'], number> = { running: 0, pending: 1, completed: 2 };

/** The JSON behind the instance's part of the page: one page of shards and the latest of the rest. */
export function instanceView(data: InstanceData, query: ShardQuery, liveness: Liveness, location: string, now = Date.now()) {
  const { instance } = data;
  const byName = new Map(data.shards.map((shard) => [shard.name, shard]));
  const current = new Map<string, RunInfo>();
  for (const run of data.runs) if (run.generation === instance.generation && !current.has(run.shard)) current.set(run.shard, run);
  const rows = data.shards.map((shard) => shardRow(shard, current.get(shard.name), data.totals.get(`${instance.generation}:${shard.name}`), liveness, now));

  const matching = rows
    .filter((row) => (query.status === 'all' || row.status === query.status) && (query.search === '' || row.name.includes(query.search)))
    .sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status]);
  const running = rows.filter((row) => row.holder !== null);
  const rate = running.reduce((sum, row) => sum + (row.holder?.dead === null ? (row.rate ?? 0) : 0), 0);
  const allTotals = rows.every((row) => row.total !== null);
  const total = allTotals ? rows.reduce((sum, row) => sum + (row.total ?? 0), 0) : null;
  const done = rows.reduce((sum, row) => sum + row.done, 0);
  const workers = new Map<string, { worker: string; shards: number; dead: string | null }>();
  for (const row of running) {
    const holder = row.holder!;
    const entry = workers.get(holder.worker) ?? { worker: holder.worker, shards: 0, dead: holder.dead };
    entry.shards++;
    workers.set(holder.worker, entry);
  }
  const runs = data.runs.map((run) => runRow(run, byName.get(run.shard), liveness, now));
  // The interval in force: the newest run of this generation that has reported its policy.
  const newestRun = data.runs.find((run) => run.generation === instance.generation && typeof run.stats.policy === 'string');

  return {
    now,
    instance: { ...instance, params: redactJson(instance.params) },
    summary: {
      shards: {
        total: rows.length,
        running: rows.filter((row) => row.status === 'running').length,
        pending: rows.filter((row) => row.status === 'pending').length,
        completed: rows.filter((row) => row.status === 'completed').length,
      },
      checkpointed: rows.reduce((sum, row) => sum + row.checkpointed, 0),
      done,
      total,
      /** Shards whose source size is not known yet (never started, or a source without size()). */
      unsized: rows.filter((row) => row.total === null).length,
      rate,
      etaMs: total !== null && rate > 0 ? (1000 * Math.max(0, total - done)) / rate : null,
      /** The followers' lag: records summed, the longest time; null when no running shard reports one. */
      lag: combinedLag(rows.flatMap((row) => (row.lag === null ? [] : [{ records: row.lag.records, ...(row.lag.ms === null ? {} : { ms: row.lag.ms }) }]))),
      workers: [...workers.values()],
      lastCheckpointAt: rows.reduce<number | null>(
        (latest, row) => (row.lastCheckpointAt !== null && (latest === null || row.lastCheckpointAt > latest) ? row.lastCheckpointAt : latest),
        null,
      ),
      interval: newestRun === undefined ? null : intervalOf(newestRun.stats),
      crashed: runs.filter((run) => run.outcome === 'crashed').length,
      presumedDead: runs.filter((run) => run.dead !== null).length,
      deadLetters: data.deadLetterCount,
    },
    shards: { matching: matching.length, offset: query.offset, rows: matching.slice(query.offset, query.offset + query.limit) },
    runs: runs.slice(0, 100),
    runCount: runs.length,
    deadLetters: data.deadLetters
      .slice(-DEAD_LETTERS_SHOWN)
      .reverse()
      .map((letter) => ({ ...letter, record: clip(redactJson(letter.record)), position: redactJson(letter.position), error: redactText(letter.error) })),
    events: data.events.slice(0, 100).map((event) => ({ ...event, data: redactJson(event.data) })),
    commands: commandsFor(instance, location),
  };
}

function shardRow(shard: ShardInfo, run: RunInfo | undefined, total: number | undefined, liveness: Liveness, now: number): ShardRow {
  const held = shard.status === 'running' && run !== undefined && run.outcome === 'running';
  const done = held ? Math.max(shard.processed, run.markProcessed) : shard.processed;
  const elapsed = held ? run.heartbeatAt - run.startedAt : 0;
  const rate = held && elapsed > 0 ? (1000 * Math.max(0, run.markProcessed - run.startProcessed)) / elapsed : null;
  const dead = held ? liveness(run, shard, now) : null;
  const [lag] = held && dead === null ? followerLags([run]) : [];
  return {
    name: shard.name,
    status: shard.status,
    checkpointed: shard.processed,
    done: shard.status === 'completed' ? shard.processed : done,
    total: shard.status === 'completed' ? shard.processed : (total ?? null),
    rate: dead === null ? rate : 0,
    etaMs: dead === null && rate !== null && rate > 0 && total !== undefined ? (1000 * Math.max(0, total - done)) / rate : null,
    lag: lag === undefined ? null : { records: lag.records, ms: lag.ms ?? null, at: lag.at },
    holder: held
      ? {
          worker: run.worker,
          runId: run.id,
          heldMs: Math.max(0, now - run.startedAt),
          heartbeatAgeMs: Math.max(0, now - run.heartbeatAt),
          leaseLeftMs: shard.leaseExpiresAt - now,
          dead,
        }
      : null,
    checkpointSeq: shard.checkpointSeq,
    // The shard row is touched by a claim, each commit and a release: while held, its time is
    // the last checkpoint's only once this run has written one.
    lastCheckpointAt: shard.checkpointSeq === 0 || (held && run.checkpoints === 0) ? null : shard.updatedAt,
    interval: run === undefined ? null : intervalOf(run.stats),
  };
}

function runRow(run: RunInfo, shard: ShardInfo | undefined, liveness: Liveness, now: number) {
  const end = run.endedAt ?? run.heartbeatAt;
  const elapsed = Math.max(0, end - run.startedAt);
  const stillRunning = run.outcome === 'running';
  return {
    id: run.id,
    generation: run.generation,
    shard: run.shard,
    worker: run.worker,
    startedAt: run.startedAt,
    endedAt: run.endedAt,
    tookMs: elapsed,
    outcome: run.outcome,
    /** The store still says running, but the worker is gone: the next run (or `ckpt status`) records it as crashed. */
    dead: stillRunning && run.generation === shard?.generation ? liveness(run, shard, now) : null,
    resumedFrom: run.startProcessed > 0 || run.resumedFrom !== null ? redactJson(run.resumedFrom) : null,
    resumed: run.startProcessed > 0 || run.resumedFrom !== null,
    startProcessed: run.startProcessed,
    records: run.outcome === 'crashed' || stillRunning ? Math.max(0, run.markProcessed - run.startProcessed) : run.processed,
    rework: run.rework,
    reworkMs: typeof run.stats.reworkMs === 'number' ? run.stats.reworkMs : null,
    checkpoints: run.checkpoints,
    overheadPct: elapsed > 0 ? (100 * run.checkpointMs) / elapsed : null,
    interval: intervalOf(run.stats),
    error: run.error === null ? null : redactText(run.error),
  };
}

function intervalOf(stats: JsonObject) {
  const number = (value: JsonValue | undefined) => (typeof value === 'number' ? value : null);
  const text = (value: JsonValue | undefined) => (typeof value === 'string' ? value : null);
  return { ms: number(stats.intervalMs), records: number(stats.intervalRecords), reason: text(stats.intervalReason), policy: text(stats.policy) };
}

/** A record shown in a table cell: its JSON, cut to a readable length. */
function clip(value: JsonValue): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
