import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ExitCode } from '../errors.ts';

/** One `ckpt run` process that `ckpt chaos` starts, watches through its JSON lines, and kills. */
export interface ChaosWorker {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly spawnedAt: number;
  /** When it began processing (its first run:start or run:resume, by its own stamp), if it has. */
  beganAt: number | undefined;
  /** The shard it began with, and the records that shard had committed then. */
  beganShard: string | undefined;
  beganProcessed: number;
  /** When its last checkpoint committed (its own stamp), if it wrote one. */
  lastCheckpointAt: number | undefined;
  checkpoints: number;
  /** The type of the last event it printed, progress and log lines aside, and its stamp. */
  lastEvent: string | undefined;
  lastEventAt: number | undefined;
  /** Effects it started and has not reported done or failed: key → when it started. */
  readonly openEffects: Map<string, number>;
  /** Per shard, the records its last checkpoint committed (a shard's running count, across runs). */
  readonly committed: Map<string, number>;
  /** It finished the shard it last began (shard:complete or its run:end) and has begun no other. */
  shardDone: boolean;
  /** It saw the instance complete, or printed a successful summary: nothing is left to kill but its exit. */
  finished: boolean;
  /** Records its summary counted (a clean run's size). */
  records: number | undefined;
  /** Why its run failed, from its summary line (with --json, failures are reported on stdout). */
  failure: string | undefined;
  /** What holds the instance, from its summary line when it ended held (exit 7). */
  held: string | undefined;
  /** Its summary said `lost` (exit 4): every run it started was fenced out and the others completed the instance. */
  lost: boolean;
  /** When it opened a hold (its `guard:held` line), if it did. */
  holdOpenedAt: number | undefined;
  /** Resolves true once it begins processing, false if it exits first. */
  readonly began: Promise<boolean>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Called on each checkpoint line it prints, as the line is read. */
  onCheckpoint: (() => void) | undefined;
  /** Called on the `guard:held` line it prints when it opens a hold, as the line is read. */
  onHold: (() => void) | undefined;
}

/** Lines that say nothing about where the run is, only how fast it goes. */
const QUIET_EVENTS = new Set(['progress', 'log', 'store:retry']);

/** The workers alive now, and whether chaos is stopping (then no worker starts). */
const live = new Set<ChildProcess>();
let stopping = false;

/**
 * Chaos was stopped (SIGINT, SIGTERM): every worker it started is SIGKILLed, a SIGSTOPped one
 * too (which would otherwise stay stopped for ever, holding its scratch store), and none starts
 * after. Resolves once each has exited.
 */
export async function killEveryWorker(): Promise<void> {
  stopping = true;
  const exits = [...live].map((child) => new Promise<void>((resolve) => child.once('close', () => resolve())));
  for (const child of live) child.kill('SIGKILL');
  await Promise.all(exits);
}

/** A process chaos starts (a run, a `--check` script): killed with the others if chaos is stopped. */
export function startChild(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  if (stopping) throw new Error('ckpt chaos is stopping: nothing starts');
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('close', () => live.delete(child));
  return child;
}

/** Starts `node <ckpt.js> run …` with the job's scratch environment. */
export function startWorker(ckptBin: string, args: string[], env: NodeJS.ProcessEnv): ChaosWorker {
  const child = startChild([ckptBin, ...args], env);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    // Only the end matters (the reason a run failed), and a chatty job must not fill memory.
    stderr = (stderr + chunk).slice(-4000);
  });
  let markBegan: (began: boolean) => void = () => undefined;
  const began = new Promise<boolean>((resolve) => {
    markBegan = resolve;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    // 'close' comes after stdout ended, so every line the child printed before it died has been read.
    child.on('close', (code, signal) => {
      markBegan(false);
      resolve({ code, signal, stderr });
    });
  });
  const worker: ChaosWorker = {
    child,
    pid: child.pid ?? -1,
    spawnedAt: Date.now(),
    beganAt: undefined,
    beganShard: undefined,
    beganProcessed: 0,
    lastCheckpointAt: undefined,
    checkpoints: 0,
    lastEvent: undefined,
    lastEventAt: undefined,
    openEffects: new Map(),
    committed: new Map(),
    shardDone: false,
    finished: false,
    lost: false,
    records: undefined,
    failure: undefined,
    held: undefined,
    holdOpenedAt: undefined,
    began,
    exit,
    onCheckpoint: undefined,
    onHold: undefined,
  };
  if (child.stdout) createInterface({ input: child.stdout }).on('line', (line) => readLine(worker, line, markBegan));
  return worker;
}

function readLine(worker: ChaosWorker, line: string, markBegan: (began: boolean) => void): void {
  if (!line.startsWith('{"type":"')) return;
  let event: { type: string; at?: number; data?: { [key: string]: unknown }; error?: unknown; records?: unknown; exitCode?: unknown; outcome?: unknown };
  try {
    event = JSON.parse(line) as typeof event;
  } catch {
    return;
  }
  const at = typeof event.at === 'number' ? event.at : Date.now();
  const data = event.data ?? {};
  if (!QUIET_EVENTS.has(event.type)) {
    worker.lastEvent = event.type;
    worker.lastEventAt = at;
  }
  switch (event.type) {
    case 'run:start':
    case 'run:resume':
      worker.shardDone = false;
      if (worker.beganAt === undefined) {
        worker.beganAt = at;
        worker.beganShard = String(data.shard);
        worker.beganProcessed = typeof data.processed === 'number' ? data.processed : 0;
        markBegan(true);
      }
      break;
    case 'checkpoint':
      worker.lastCheckpointAt = at;
      worker.checkpoints++;
      if (typeof data.shard === 'string' && typeof data.processed === 'number') worker.committed.set(data.shard, data.processed);
      worker.onCheckpoint?.();
      break;
    case 'effect:start':
      worker.openEffects.set(String(data.key), at);
      break;
    case 'effect:done':
    case 'effect:failed':
      worker.openEffects.delete(String(data.key));
      break;
    case 'shard:complete':
      worker.shardDone = true;
      break;
    case 'run:end':
      // A run that ended held stopped before its shard's end: the shard is not done.
      if (data.outcome !== 'held') worker.shardDone = true;
      break;
    case 'guard:held':
      worker.holdOpenedAt = at;
      worker.onHold?.();
      break;
    case 'instance:complete':
      worker.finished = true;
      break;
    case 'summary':
      if (event.exitCode === 0) worker.finished = true;
      // Fenced out, the instance completed by the others: finished, and no failure.
      if (event.outcome === 'lost') {
        worker.finished = true;
        worker.lost = true;
      }
      // Held (exit 7) is no failure: a guard waits for a person.
      if (event.exitCode === ExitCode.held) worker.held = typeof event.error === 'string' ? event.error : 'held';
      else if (typeof event.error === 'string') worker.failure = event.error;
      if (typeof event.records === 'number') worker.records = event.records;
      break;
  }
}

/** How fast it went, from the first shard it began to that shard's last checkpoint; undefined before one. */
export function msPerRecord(worker: ChaosWorker): number | undefined {
  const shard = worker.beganShard;
  if (shard === undefined || worker.beganAt === undefined || worker.lastCheckpointAt === undefined) return undefined;
  const records = (worker.committed.get(shard) ?? 0) - worker.beganProcessed;
  return records > 0 ? (worker.lastCheckpointAt - worker.beganAt) / records : undefined;
}

/** Resolves after `ms`, or as soon as the worker exits; true if it is still running. */
export async function stillRunningAfter(worker: ChaosWorker, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const slept = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  const result = await Promise.race([slept, worker.exit.then(() => false)]);
  clearTimeout(timer);
  return result;
}

/**
 * Resolves as the worker's next checkpoint line is read (so a kill can follow it at once), or
 * after `ms` without one; true if it is still running.
 */
export async function nextCheckpointWithin(worker: ChaosWorker, ms: number): Promise<boolean> {
  const seen = new Promise<boolean>((resolve) => {
    worker.onCheckpoint = () => resolve(true);
  });
  try {
    return await Promise.race([seen, stillRunningAfter(worker, ms)]);
  } finally {
    worker.onCheckpoint = undefined;
  }
}

/** Resolves as the worker's `guard:held` line is read (it opened a hold), or after `ms` without one; true if it is still running. */
export async function nextHoldWithin(worker: ChaosWorker, ms: number): Promise<boolean> {
  const seen = new Promise<boolean>((resolve) => {
    worker.onHold = () => resolve(true);
  });
  try {
    return await Promise.race([seen, stillRunningAfter(worker, ms)]);
  } finally {
    worker.onHold = undefined;
  }
}

/** A small seeded generator (mulberry32): the same seed gives the same kill schedule. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
