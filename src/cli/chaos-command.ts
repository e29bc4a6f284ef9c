import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode, UsageError } from '../errors.ts';
import { resolveParams } from '../job/params.ts';
import { parseStoreUrl } from '../store/open-store.ts';
import { checkInvariant, importJob, type JobModule, prepareStore, readHistory } from './chaos-invariant.ts';
import { type ChaosRoundFacts, chaosReport, describeChaos, killsAfterTheEnd } from './chaos-report.ts';
import { type CleanTiming, chaosRound, type Pace, why } from './chaos-round.ts';
import { type ScratchStore, scratchStore } from './chaos-scratch.ts';
import { seededRandom, startWorker } from './chaos-workers.ts';
import { formatMs } from './format.ts';
import { parseParams } from './load-job.ts';
import type { CliIo } from './shared.ts';

export interface ChaosOptions {
  kills: number;
  seed?: number;
  stopPastLease?: boolean;
  check?: string;
  param: string[];
  /** The kind of store the job really uses; a scratch schema or database is made on it. */
  store?: string;
  every?: number;
  everyMs?: number;
  concurrency?: number;
  leaseMs?: number;
  keep?: boolean;
  json?: boolean;
}

/** Lease while SIGSTOPs are planned (unless --lease-ms says): short, so a second worker takes over within seconds. */
const STOP_LEASE_MS = 1500;
/** Rounds in a row that landed no kill before the job completed: then the job is too short to crash. */
const BARREN_ROUNDS = 3;
/** "Right after a checkpoint": within this share of the clean run's checkpoint interval, and never less than the floor. */
const NEAR_CHECKPOINT_SHARE = 0.1;
const NEAR_CHECKPOINT_FLOOR_MS = 20;

const ckptBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt.js');

/** What every run of one chaos session shares: the job, how to start a run of it, and where. */
interface ChaosSession {
  file: string;
  options: ChaosOptions;
  module: JobModule;
  rawParams: { [key: string]: string };
  dir: string;
  random: () => number;
  leaseMs: number;
  /** The `ckpt run …` arguments on a store. */
  args(storeUrl: string): string[];
  envFor(chaosDir: string): NodeJS.ProcessEnv;
  /** A fresh home for a round (or the clean run): its scratch store, and the job's own directory. */
  prepare(home: string, label: string): Promise<{ store: ScratchStore; jobDir: string } & ReturnType<typeof resolveParams>>;
}

/**
 * `ckpt chaos <job-file>`: the job on a scratch store, SIGKILLed at seeded random moments (and
 * SIGSTOPped past its lease when asked), resumed until it completes, then checked by its own
 * invariant; run again from the start on a fresh scratch store while kills asked are still to
 * land. Exit 0 when every kill landed and nothing was violated, 5 when something was (each
 * named), 6 when fewer kills landed than asked (how many, and why).
 */
export async function chaosCommand(file: string, options: ChaosOptions, io: CliIo): Promise<number> {
  const path = resolve(file);
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`job file not found: ${file}`);
  if (options.check !== undefined && !existsSync(resolve(options.check))) throw new UsageError(`--check script not found: ${options.check}`);
  // Checked before anything is created on it: a bad URL is a usage error, not a half-made schema.
  if (options.store !== undefined) parseStoreUrl(options.store);
  const rawParams = parseParams(options.param);
  const seed = options.seed ?? Math.floor(Math.random() * 1_000_000);
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-chaos-'));
  // The job module is loaded here too (for its invariant): with the scratch directory it will see.
  process.env.CKPT_CHAOS_DIR = join(dir, 'job');
  const module = await importJob(file, path);
  const runFlags: [string, number | undefined][] = [
    ['--every', options.every],
    ['--every-ms', options.everyMs],
    ['--concurrency', options.concurrency],
    ['--lease-ms', options.leaseMs ?? (options.stopPastLease ? STOP_LEASE_MS : undefined)],
  ];
  // One name per chaos session, so two at once on one server never meet: ckpt_chaos_<id>_clean, _1, _2…
  const scratchId = `ckpt_chaos_${randomBytes(4).toString('hex')}`;
  const made: ScratchStore[] = [];
  const session: ChaosSession = {
    file,
    options,
    module,
    rawParams,
    dir,
    random: seededRandom(seed),
    leaseMs: options.leaseMs ?? STOP_LEASE_MS,
    args: (storeUrl) => [
      'run',
      path,
      '--store',
      storeUrl,
      '--json',
      '--wait',
      ...options.param.flatMap((pair) => ['--param', pair]),
      ...runFlags.flatMap(([flag, value]) => (value === undefined ? [] : [flag, String(value)])),
    ],
    envFor: (chaosDir) => ({ ...io.env, CKPT_CHAOS_DIR: chaosDir, CKPT_STORE: undefined, DATABASE_URL: undefined }),
    prepare: async (home, label) => {
      mkdirSync(join(home, 'job'), { recursive: true });
      // The job's params may name files under CKPT_CHAOS_DIR: resolved as its workers will.
      process.env.CKPT_CHAOS_DIR = join(home, 'job');
      const resolved = resolveParams(module.default, rawParams);
      const store = await scratchStore(options.store, home, `${scratchId}_${label}`);
      made.push(store);
      await prepareStore(module, file, { params: resolved.params, dir: join(home, 'job'), store: store.url });
      return { store, jobDir: join(home, 'job'), ...resolved };
    },
  };
  // Scratch schemas and databases are dropped whatever happens, unless a violation (or --keep) keeps them for a look.
  let keep = options.keep === true;
  try {
    const timing = await cleanRun(session);
    const { rounds, shortfall, windowMs } = await chaosRounds(session, timing);
    const report = chaosReport({
      job: module.default.name,
      params: rounds[0]?.params ?? {},
      seed,
      dir,
      cleanRunMs: timing.processMs,
      windowMs,
      nearCheckpointMs: timing.nearCheckpointMs,
      requestedKills: options.kills,
      rounds,
      shortfall,
    });
    io.stdout.write(`${options.json ? JSON.stringify(report) : describeChaos(report)}\n`);
    if (report.violations.length > 0) {
      keep = true;
      return ExitCode.violation;
    }
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
    return report.shortfall === null ? ExitCode.completed : ExitCode.chaosShort;
  } finally {
    if (!keep) for (const store of made) await store.drop();
  }
}

/**
 * A clean run on its own scratch store and directory measures the job: its start-up, its
 * processing time and its records, against which the kills are scheduled.
 */
async function cleanRun(session: ChaosSession): Promise<CleanTiming & { nearCheckpointMs: number }> {
  const home = join(session.dir, 'clean');
  const scratch = await session.prepare(home, 'clean');
  const clean = startWorker(ckptBin, session.args(scratch.store.url), session.envFor(scratch.jobDir));
  const exit = await clean.exit;
  if (exit.code !== 0) {
    throw new UsageError(
      `${session.file} does not complete even without crashes (exit ${exit.code}): ${why(clean, exit.stderr)}; fix it before testing it under chaos`,
    );
  }
  const end = Date.now();
  const began = clean.beganAt ?? clean.spawnedAt;
  rmSync(home, { recursive: true, force: true });
  const checkpointEveryMs = (end - began) / Math.max(1, clean.checkpoints);
  return {
    startUpMs: (clean.beganAt ?? end) - clean.spawnedAt,
    processMs: Math.max(1, end - began),
    records: clean.records ?? 0,
    checkpointEveryMs,
    nearCheckpointMs: Math.round(Math.max(NEAR_CHECKPOINT_FLOOR_MS, NEAR_CHECKPOINT_SHARE * checkpointEveryMs)),
  };
}

/**
 * Rounds until every kill asked has landed: each is the job from the start on a fresh store and
 * directory, so a job that completed before all its kills landed is run again, and what was asked
 * is what is delivered; unless a round finds a violation, or the job is too short to crash.
 */
async function chaosRounds(
  session: ChaosSession,
  timing: CleanTiming & { nearCheckpointMs: number },
): Promise<{ rounds: (ChaosRoundFacts & { params: { [key: string]: unknown } })[]; shortfall: string | undefined; windowMs: number }> {
  const { options, random } = session;
  const stopAt = new Set<number>();
  if (options.stopPastLease) {
    const stops = Math.max(1, Math.round(options.kills / 5));
    while (stopAt.size < Math.min(stops, options.kills)) stopAt.add(Math.floor(random() * options.kills));
  }
  const rounds: (ChaosRoundFacts & { params: { [key: string]: unknown } })[] = [];
  let landed = 0;
  let barren = 0;
  let windowMs: number | undefined;
  const pace: Pace = { msPerRecord: timing.records > 0 ? timing.processMs / timing.records : undefined, processMs: timing.processMs };
  while (landed < options.kills) {
    const round = rounds.length + 1;
    const home = round === 1 ? session.dir : join(session.dir, `round-${round}`);
    const scratch = await session.prepare(home, String(round));
    const env = session.envFor(scratch.jobDir);
    const outcome = await chaosRound({
      round,
      ckptBin,
      args: session.args(scratch.store.url),
      env,
      random,
      timing,
      pace,
      toLand: options.kills - landed,
      firstIndex: landed,
      stopAt,
      leaseMs: session.leaseMs,
      nearCheckpointMs: timing.nearCheckpointMs,
    });
    windowMs ??= outcome.firstWindowMs;
    const { runs, events } = await readHistory(scratch.store.url, session.module.default.name, scratch.paramsHash);
    // Only the store knows whether a kill came after the job's last commit, before its worker said so.
    const late = killsAfterTheEnd(outcome.kills, runs);
    const kills = outcome.kills.filter((kill) => !late.has(kill));
    landed += kills.length;
    const invariant = await checkInvariant(
      session.module,
      options.check,
      { params: scratch.params, dir: scratch.jobDir, store: scratch.store.url, events, runs },
      env,
      scratch.store.url,
    );
    rounds.push({ round, dir: home, store: scratch.store.shown, params: scratch.displayParams, runs, events, invariant, ...outcome, kills, late: late.size });
    if (outcome.violations.length > 0 || !invariant.ok) break;
    barren = kills.length === 0 ? barren + 1 : 0;
    if (barren >= BARREN_ROUNDS) {
      const shortfall = `the job completed before any kill could land in ${BARREN_ROUNDS} runs from the start in a row (its clean run took ${formatMs(timing.processMs)})`;
      return { rounds, shortfall, windowMs: windowMs ?? 0 };
    }
  }
  return { rounds, shortfall: undefined, windowMs: windowMs ?? 0 };
}
