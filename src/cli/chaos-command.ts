import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CheckpointedError, ExitCode, UsageError } from '../errors.ts';
import { resolveParams } from '../job/params.ts';
import { shutdownOnSignals } from '../job/shutdown.ts';
import { parseStoreUrl } from '../store/open-store.ts';
import { answerHolds, flagFor, type HoldMet, type HoldOrders, holdState, holdViolations, limitsOf, notToldLine, parseHoldOrders } from './chaos-holds.ts';
import { checkInvariant, importJob, type JobModule, prepareStore, readHistory } from './chaos-invariant.ts';
import { type ChaosRoundFacts, chaosReport, describeChaos, killsAfterTheEnd } from './chaos-report.ts';
import { type CleanTiming, chaosRound, type Pace, why } from './chaos-round.ts';
import { type ScratchStore, scratchStore } from './chaos-scratch.ts';
import { killEveryWorker, seededRandom, startWorker } from './chaos-workers.ts';
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
  /** `--approve NAME`: pass the approval point NAME each time the job holds there. */
  approve?: string[];
  /** `--raise kind=+N`: raise the held limit on `kind` by N each time the job holds there. */
  raise?: string[];
  /** `--expect-hold NAME`: the job is to end held there; chaos checks that it does, again after kills. */
  expectHold?: string[];
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
  /** What to do when the job holds. */
  orders: HoldOrders;
  /** A run on this store ended held: approve as told (the reason names the session), or say it ends held. */
  answer(store: string, paramsHash: string, when: string): ReturnType<typeof answerHolds>;
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
  const orders = parseHoldOrders(options);
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
    orders,
    answer: (storeUrl, paramsHash, when) => answerHolds(storeUrl, module.default.name, paramsHash, orders, `ckpt chaos, seed ${seed}, ${when}`),
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
  // SIGINT or SIGTERM: the workers are killed (a stopped one too), the scratch dropped, exit 3.
  let stopSignal: NodeJS.Signals | undefined;
  let wake: () => void = () => undefined;
  const stopped = new Promise<undefined>((resolveStop) => {
    wake = () => resolveStop(undefined);
  });
  const shutdown = shutdownOnSignals({
    onFirst: (signal) => {
      stopSignal = signal;
      wake();
    },
    onForce: () => process.exit(ExitCode.interrupted),
  });
  try {
    const work = chaosWork();
    // Once stopped, what the rounds were doing fails (its runs killed, no run may start): not the answer.
    work.catch(() => undefined);
    try {
      const code = await Promise.race([work, stopped]);
      if (stopSignal === undefined && code !== undefined) return code;
    } catch (error) {
      if (stopSignal === undefined) throw error;
    }
    await killEveryWorker();
    // What the rounds were doing ends soon once no run is left (reading the store's history, say):
    // waited for a while, so that it writes nothing into the scratch after it is removed.
    await Promise.race([work.catch(() => undefined), sleep(5000, undefined, { ref: false })]);
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
    throw new CheckpointedError(
      `ckpt chaos stopped by ${stopSignal}: its runs were killed and no verdict was reached${options.keep ? `; the scratch is kept in ${dir}` : ''}; run it again`,
      ExitCode.interrupted,
    );
  } finally {
    shutdown.dispose();
    if (!keep) for (const store of made) await store.drop().catch(() => undefined);
  }

  async function chaosWork(): Promise<number> {
    const timing = await cleanRun(session);
    const { rounds, shortfall, windowMs, notTold } = await chaosRounds(session, timing);
    // Stopped meanwhile: rounds whose runs were killed under them have nothing to report.
    if (stopSignal !== undefined) throw new Error('stopped');
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
      holdFlags: holdFlags(orders),
      notTold,
    });
    io.stdout.write(`${options.json ? JSON.stringify(report) : describeChaos(report)}\n`);
    if (report.violations.length > 0) {
      keep = true;
      return ExitCode.violation;
    }
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
    // Neither a pass nor a violation: the user must say what chaos is to do at that hold.
    if (report.notTold !== null) return ExitCode.usage;
    return report.shortfall === null ? ExitCode.completed : ExitCode.chaosShort;
  }
}

/**
 * A clean run on its own scratch store and directory measures the job: its start-up, its
 * processing time and its records, against which the kills are scheduled. A job that holds is
 * run again after each hold chaos was told to approve (the clean run's figures are its runs'
 * sums), up to the end or to the hold it was told to expect; a hold it was not told about, or
 * a flag naming a hold the job never met, is a usage error (exit 2) before any kill.
 */
async function cleanRun(session: ChaosSession): Promise<CleanTiming & { nearCheckpointMs: number }> {
  const home = join(session.dir, 'clean');
  const scratch = await session.prepare(home, 'clean');
  let startUpMs: number | undefined;
  let processMs = 0;
  let records = 0;
  let checkpoints = 0;
  const met: HoldMet[] = [];
  for (;;) {
    const clean = startWorker(ckptBin, session.args(scratch.store.url), session.envFor(scratch.jobDir));
    const exit = await clean.exit;
    const end = Date.now();
    const began = clean.beganAt ?? clean.spawnedAt;
    startUpMs ??= (clean.beganAt ?? end) - clean.spawnedAt;
    processMs += Math.max(1, end - began);
    records += clean.records ?? 0;
    checkpoints += clean.checkpoints;
    if (exit.code === 0) break;
    if (exit.code !== ExitCode.held) {
      throw new UsageError(
        `${session.file} does not complete even without crashes (exit ${exit.code}): ${why(clean, exit.stderr)}; fix it before testing it under chaos`,
      );
    }
    const answer = await session.answer(scratch.store.url, scratch.paramsHash, 'clean run');
    met.push(...answer.met);
    const notTold = answer.met.find((hold) => hold.action === 'not-told');
    if (notTold !== undefined) {
      const unmatched = unmatchedFlags(session.orders, met);
      const wrong = unmatched.length > 0 ? `${unmatched.join(', ')} names no hold its clean run met; it ` : 'its clean run (no kills) ';
      throw new UsageError(`${session.file}: ${wrong}${notToldLine(notTold)}`);
    }
    if (answer.verdict === 'held') break;
  }
  const unmatched = unmatchedFlags(session.orders, met);
  if (unmatched.length > 0) {
    const seen = [...new Set(met.map((hold) => hold.hold))];
    throw new UsageError(
      `${unmatched.join(', ')}: ${session.file} never held there in its clean run (${seen.length > 0 ? `it held at ${seen.join(', ')}` : 'it never held'}); see ckpt chaos --help`,
    );
  }
  rmSync(home, { recursive: true, force: true });
  const checkpointEveryMs = processMs / Math.max(1, checkpoints);
  return {
    startUpMs: startUpMs ?? 0,
    processMs,
    records,
    checkpointEveryMs,
    holds: met.length,
    nearCheckpointMs: Math.round(Math.max(NEAR_CHECKPOINT_FLOOR_MS, NEAR_CHECKPOINT_SHARE * checkpointEveryMs)),
  };
}

/** The flags given that name a hold the clean run did not meet that way (approved, or ended held at). */
function unmatchedFlags(orders: HoldOrders, met: HoldMet[]): string[] {
  const approved = new Set(met.filter((hold) => hold.action === 'approved').map((hold) => hold.hold));
  const expected = new Set(met.filter((hold) => hold.action === 'expected').map((hold) => hold.hold));
  return [
    ...[...orders.approve, ...orders.raise.keys()].filter((hold) => !approved.has(hold)),
    ...[...orders.expect].filter((hold) => !expected.has(hold)),
  ].map((hold) => flagFor(hold, orders));
}

/** The hold flags as given, for the report. */
function holdFlags(orders: HoldOrders): string[] {
  return [...orders.approve, ...orders.raise.keys(), ...orders.expect].map((hold) => flagFor(hold, orders));
}

/**
 * Rounds until every kill asked has landed: each is the job from the start on a fresh store and
 * directory, so a job that completed (or ended held where expected) before all its kills landed
 * is run again, and what was asked is what is delivered; unless a round finds a violation, ends
 * at a hold chaos was not told about, or the job is too short to crash.
 */
async function chaosRounds(
  session: ChaosSession,
  timing: CleanTiming & { nearCheckpointMs: number },
): Promise<{
  rounds: (ChaosRoundFacts & { params: { [key: string]: unknown } })[];
  shortfall: string | undefined;
  windowMs: number;
  notTold: string | undefined;
}> {
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
      onHeld: () => session.answer(scratch.store.url, scratch.paramsHash, `round ${round}`),
    });
    windowMs ??= outcome.firstWindowMs;
    const job = session.module.default;
    const { runs, events } = await readHistory(scratch.store.url, job.name, scratch.paramsHash);
    const holds = await holdState(scratch.store.url, job.name, scratch.paramsHash);
    if (outcome.ended === 'completed' || outcome.ended === 'held') {
      outcome.violations.push(...holdViolations(session.orders, outcome.ended, holds, limitsOf(job.limits, outcome.holds)));
    }
    // Only the store knows whether a kill came after the job's last commit, before its worker said so.
    const late = killsAfterTheEnd(outcome.kills, runs);
    const kills = outcome.kills.filter((kill) => !late.has(kill));
    landed += kills.length;
    const held = holds.open.map((hold) => hold.name);
    const invariant = await checkInvariant(
      session.module,
      options.check,
      { params: scratch.params, dir: scratch.jobDir, store: scratch.store.url, events, runs, held },
      env,
      scratch.store.url,
    );
    rounds.push({
      round,
      dir: home,
      store: scratch.store.shown,
      params: scratch.displayParams,
      runs,
      events,
      invariant,
      ...outcome,
      held,
      kills,
      late: late.size,
    });
    if (outcome.violations.length > 0 || !invariant.ok) break;
    const notTold = outcome.holds.find((hold) => hold.action === 'not-told');
    if (outcome.ended === 'not-told' && notTold !== undefined) return { rounds, shortfall: undefined, windowMs: windowMs ?? 0, notTold: notToldLine(notTold) };
    barren = kills.length === 0 ? barren + 1 : 0;
    if (barren >= BARREN_ROUNDS) {
      const ended = outcome.ended === 'held' ? 'ended held' : 'completed';
      const shortfall = `the job ${ended} before any kill could land in ${BARREN_ROUNDS} runs from the start in a row (its clean run took ${formatMs(timing.processMs)})`;
      return { rounds, shortfall, windowMs: windowMs ?? 0, notTold: undefined };
    }
  }
  return { rounds, shortfall: undefined, windowMs: windowMs ?? 0, notTold: undefined };
}
