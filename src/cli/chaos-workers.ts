import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** One `ckpt run` process that `ckpt chaos` starts, watches through its JSON lines, and kills. */
export interface ChaosWorker {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly spawnedAt: number;
  /** When it began processing (its first run:start or run:resume), if it has. */
  beganAt: number | undefined;
  /** When its last checkpoint committed, if it wrote one. */
  lastCheckpointAt: number | undefined;
  checkpoints: number;
  /** Why its run failed, from its summary line (with --json, failures are reported on stdout). */
  failure: string | undefined;
  /** Resolves true once it begins processing, false if it exits first. */
  readonly began: Promise<boolean>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** Starts `node <ckpt.js> run …` with the job's scratch environment. */
export function startWorker(ckptBin: string, args: string[], env: NodeJS.ProcessEnv): ChaosWorker {
  const child = spawn(process.execPath, [ckptBin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    lastCheckpointAt: undefined,
    checkpoints: 0,
    failure: undefined,
    began,
    exit,
  };
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const type = /^\{"type":"([^"]+)"/.exec(line)?.[1];
      if ((type === 'run:start' || type === 'run:resume') && worker.beganAt === undefined) {
        worker.beganAt = Date.now();
        markBegan(true);
      }
      if (type === 'checkpoint') {
        worker.lastCheckpointAt = Date.now();
        worker.checkpoints++;
      }
      if (type === 'summary') {
        const error = (JSON.parse(line) as { error?: unknown }).error;
        if (typeof error === 'string') worker.failure = error;
      }
    });
  }
  return worker;
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
