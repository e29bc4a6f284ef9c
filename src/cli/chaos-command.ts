import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ExitCode, firstLine, UsageError } from '../errors.ts';
import type { ChaosCheckInput, ChaosInvariant } from '../job/chaos-check.ts';
import { type AnyJob, isJob } from '../job/define.ts';
import { resolveParams } from '../job/params.ts';
import { openStore } from '../store/open-store.ts';
import type { RunInfo, StoredEvent } from '../store/store.ts';
import { type ChaosKill, chaosReport, describeChaos, type InvariantResult } from './chaos-report.ts';
import { type ChaosWorker, seededRandom, startWorker, stillRunningAfter } from './chaos-workers.ts';
import { parseParams } from './load-job.ts';
import type { CliIo } from './shared.ts';

export interface ChaosOptions {
  kills: number;
  seed?: number;
  stopPastLease?: boolean;
  check?: string;
  param: string[];
  keep?: boolean;
  json?: boolean;
}

/** Lease while SIGSTOPs are planned: short, so a second worker takes over within seconds. */
const STOP_LEASE_MS = 1500;
/** One kill in this many lands during start-up (loading, claiming, resuming), not while processing. */
const START_UP_SHARE = 0.2;
/** How long the final run, and workers woken from SIGSTOP, may take to finish. */
const FINISH_MS = 300_000;

const ckptBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt.js');

/**
 * `ckpt chaos <job-file>`: the job on a scratch store, SIGKILLed at seeded random moments (and
 * SIGSTOPped past its lease when asked), resumed until it completes, then checked by its own
 * invariant. Exit 0 when nothing was violated, 5 when something was (each named).
 */
export async function chaosCommand(file: string, options: ChaosOptions, io: CliIo): Promise<number> {
  const path = resolve(file);
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`job file not found: ${file}`);
  if (options.check !== undefined && !existsSync(resolve(options.check))) throw new UsageError(`--check script not found: ${options.check}`);
  const rawParams = parseParams(options.param);
  const seed = options.seed ?? Math.floor(Math.random() * 1_000_000);
  const random = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-chaos-'));
  const jobDir = join(dir, 'job');
  mkdirSync(jobDir);
  const store = `sqlite:${join(dir, 'store.db')}`;
  // The job module is loaded here too (for its invariant): with the scratch directory it will see.
  process.env.CKPT_CHAOS_DIR = jobDir;
  const module = await importJob(file, path);
  const job = module.default;
  const { params, displayParams } = resolveParams(job, rawParams);

  const args = (storeUrl: string) => [
    'run',
    path,
    '--store',
    storeUrl,
    '--json',
    '--wait',
    ...options.param.flatMap((pair) => ['--param', pair]),
    ...(options.stopPastLease ? ['--lease-ms', String(STOP_LEASE_MS)] : []),
  ];
  const envFor = (chaosDir: string): NodeJS.ProcessEnv => ({ ...io.env, CKPT_CHAOS_DIR: chaosDir, CKPT_STORE: undefined, DATABASE_URL: undefined });
  const violations: string[] = [];

  // A clean run on its own scratch store and directory times the job, so the kills can be spread
  // over it: each lands within a window after a run begins that is short enough for all of them to
  // land before the end (half the clean time over the kills), yet spans two checkpoint intervals,
  // so runs get past checkpoints and the kills fall all along the job, not all in its first chunk;
  // never past half the clean run, so a short job whose only checkpoint is its last (the auto
  // policy's first interval outlasts it) is still killed mid-run rather than after it completed.
  const cleanDir = join(dir, 'clean');
  mkdirSync(join(cleanDir, 'job'), { recursive: true });
  const clean = startWorker(ckptBin, args(`sqlite:${join(cleanDir, 'store.db')}`), envFor(join(cleanDir, 'job')));
  const cleanExit = await clean.exit;
  if (cleanExit.code !== 0) {
    throw new UsageError(
      `${file} does not complete even without crashes (exit ${cleanExit.code}): ${why(clean, cleanExit.stderr)}; fix it before testing it under chaos`,
    );
  }
  const cleanRunMs = Date.now() - (clean.beganAt ?? clean.spawnedAt);
  const startUpMs = (clean.beganAt ?? Date.now()) - clean.spawnedAt;
  const checkpointEveryMs = cleanRunMs / Math.max(1, clean.checkpoints);
  const windowMs = Math.max(5, Math.round(Math.min(cleanRunMs / 2, Math.max(cleanRunMs / (2 * options.kills), 2 * checkpointEveryMs))));
  rmSync(cleanDir, { recursive: true, force: true });

  const kills: ChaosKill[] = [];
  const stopAt = new Set<number>();
  if (options.stopPastLease) {
    const stops = Math.max(1, Math.round(options.kills / 5));
    while (stopAt.size < Math.min(stops, options.kills)) stopAt.add(Math.floor(random() * options.kills));
  }
  const env = envFor(jobDir);
  const woken: ChaosWorker[] = [];
  let completed = false;
  let current: ChaosWorker | undefined;
  for (let index = 0; index < options.kills && !completed && violations.length === 0; index++) {
    current ??= startWorker(ckptBin, args(store), env);
    const worker = current;
    const duringStartUp = random() < START_UP_SHARE;
    const delay = random() * (duringStartUp ? startUpMs : windowMs);
    const alive = duringStartUp ? await stillRunningAfter(worker, delay) : (await worker.began) && (await stillRunningAfter(worker, delay));
    if (!alive) {
      const exit = await worker.exit;
      if (exit.code === 0) completed = true;
      else violations.push(`a run of the job exited ${exit.code ?? exit.signal} under chaos: ${why(worker, exit.stderr)}`);
      break;
    }
    const phase = worker.beganAt === undefined ? 'start-up' : 'processing';
    const atRiskMs = worker.beganAt === undefined ? null : Date.now() - Math.max(worker.beganAt, worker.lastCheckpointAt ?? 0);
    if (stopAt.has(index)) {
      worker.child.kill('SIGSTOP');
      kills.push({ kind: 'stop', pid: worker.pid, phase, atRiskMs });
      // A second worker takes the shard once the lease lapses; then the first wakes up, fenced.
      current = startWorker(ckptBin, args(store), env);
      // Not past lease + 2 s: frozen inside a SQLite write, the first one holds the file's lock
      // (and a job's own files' locks), and the second must not time out waiting for it.
      const takenOver = await Promise.race([current.began, stillRunningAfter(current, STOP_LEASE_MS + 2000).then(() => false)]);
      if (takenOver) await stillRunningAfter(current, random() * Math.min(windowMs, 1000));
      worker.child.kill('SIGCONT');
      woken.push(worker);
      continue;
    }
    worker.child.kill('SIGKILL');
    await worker.exit;
    kills.push({ kind: 'kill', pid: worker.pid, phase, atRiskMs });
    current = undefined;
  }
  // Resume until complete: the last worker (or a new one) runs to the end, and so must any woken one.
  if (!completed && violations.length === 0) {
    current ??= startWorker(ckptBin, args(store), env);
    const exit = await finished(current);
    if (exit.code === 0) completed = true;
    else violations.push(`the job did not complete after the crashes: exit ${exit.code ?? exit.signal}: ${why(current, exit.stderr)}`);
  }
  for (const worker of woken) {
    const exit = await finished(worker);
    if (exit.code !== 0) violations.push(`a worker woken after SIGSTOP exited ${exit.code ?? exit.signal}: ${why(worker, exit.stderr)}`);
  }

  const { runs, events } = await readHistory(store, job.name, resolveParams(job, rawParams).paramsHash);
  const invariant = await checkInvariant(module, options.check, { params, dir: jobDir, store, events, runs }, env, store);
  const report = chaosReport({
    job: job.name,
    params: displayParams,
    seed,
    dir,
    store,
    cleanRunMs,
    windowMs,
    requestedKills: options.kills,
    kills,
    runs,
    events,
    invariant,
    completed,
    violations,
  });
  io.stdout.write(`${options.json ? JSON.stringify(report) : describeChaos(report)}\n`);
  if (report.violations.length === 0 && !options.keep) rmSync(dir, { recursive: true, force: true });
  return report.violations.length === 0 ? ExitCode.completed : ExitCode.violation;
}

interface JobModule {
  default: AnyJob;
  invariant?: unknown;
  verify?: unknown;
}

async function importJob(file: string, path: string): Promise<JobModule> {
  let module: { default?: unknown; invariant?: unknown; verify?: unknown };
  try {
    module = (await import(pathToFileURL(path).href)) as typeof module;
  } catch (error) {
    throw new UsageError(`cannot load job file ${file}: ${firstLine(error)}`, { cause: error });
  }
  if (!isJob(module.default)) throw new UsageError(`${file} does not default-export a job; end it with: export default defineJob({ name, source, process })`);
  return module as JobModule;
}

async function finished(worker: ChaosWorker): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  if (await stillRunningAfter(worker, FINISH_MS)) worker.child.kill('SIGKILL');
  return worker.exit;
}

async function readHistory(url: string, job: string, paramsHash: string): Promise<{ runs: RunInfo[]; events: StoredEvent[] }> {
  const store = await openStore(url);
  try {
    const instance = (await store.listInstances(job)).find((candidate) => candidate.paramsHash === paramsHash);
    if (instance === undefined) return { runs: [], events: [] };
    return { runs: await store.listRuns(instance.id), events: await store.listEvents(instance.id) };
  } finally {
    await store.close();
  }
}

/** The job's `invariant` (or `verify`) export, else `--check <script>` (exit 0 passes). */
async function checkInvariant(
  module: JobModule,
  script: string | undefined,
  input: ChaosCheckInput,
  env: NodeJS.ProcessEnv,
  store: string,
): Promise<InvariantResult> {
  if (script !== undefined) {
    const child = spawn(process.execPath, [resolve(script)], {
      env: { ...env, CKPT_CHAOS_STORE: store, CKPT_CHAOS_PARAMS: JSON.stringify(input.params) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) stream?.setEncoding('utf8').on('data', (chunk: string) => (output = (output + chunk).slice(-4000)));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    return { source: 'check script', ok: code === 0, message: code === 0 ? lastLine(output) : `${script} exited ${code}: ${lastLine(output)}` };
  }
  const check = typeof module.invariant === 'function' ? module.invariant : typeof module.verify === 'function' ? module.verify : undefined;
  if (check === undefined) return { source: 'none', ok: true, message: 'none: export an invariant function from the job file, or pass --check <script>' };
  const source = check === module.invariant ? 'invariant export' : 'verify export';
  try {
    const result = await (check as ChaosInvariant)(input);
    if (result === false) return { source, ok: false, message: 'it returned false' };
    if (typeof result === 'string') return { source, ok: false, message: result };
    return { source, ok: true, message: '' };
  } catch (error) {
    return { source, ok: false, message: firstLine(error) };
  }
}

function why(worker: ChaosWorker, stderr: string): string {
  return worker.failure ?? lastLine(stderr);
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}
