import { ExitCode, firstLine } from '../errors.ts';
import type { HoldMet, HoldVerdict } from './chaos-holds.ts';
import type { ChaosAim, ChaosKill, HoldPhase, KillPlace, RoundEnd } from './chaos-report.ts';
import { type ChaosWorker, msPerRecord, nextCheckpointWithin, nextHoldWithin, startWorker, stillRunningAfter } from './chaos-workers.ts';

/** What the clean run taught about the job: how long it starts up and runs, how big it is. */
export interface CleanTiming {
  /** Spawn to its first run:start. */
  startUpMs: number;
  /** First run:start to exit: the work a crashed job still has before it, at the start. */
  processMs: number;
  /** Records it processed (0 when it could not say). */
  records: number;
  checkpointEveryMs: number;
  /** Holds its runs ended at (each approved as told, or the one it ended held at): 0 for a job that never holds. */
  holds: number;
}

/**
 * How fast the job goes on this machine now, learnt over the session: the clean run's pace at
 * first, then the fastest a chaos run showed (from its checkpoints, or from running to the end).
 * Shared by the rounds, so a round after one the job finished too fast for is scheduled faster.
 */
export interface Pace {
  /** Per record, when the clean run counted its records. */
  msPerRecord: number | undefined;
  /** The whole job from its start, for a job whose records are not counted. */
  processMs: number;
}

export interface RoundPlan {
  round: number;
  ckptBin: string;
  /** The `ckpt run …` arguments on this round's store. */
  args: string[];
  env: NodeJS.ProcessEnv;
  random: () => number;
  timing: CleanTiming;
  pace: Pace;
  /** Kills (and SIGSTOPs) still to land; this round stops when they have, or when the job completes. */
  toLand: number;
  /** Index of this round's first kill in the whole schedule (SIGSTOPs are picked by it). */
  firstIndex: number;
  stopAt: ReadonlySet<number>;
  leaseMs: number;
  /** A kill this soon after a checkpoint counts as "right after" it. */
  nearCheckpointMs: number;
  /** A run ended held (exit 7): approve what chaos was told to (then the round goes on), or say it ends held. */
  onHeld(): Promise<{ verdict: HoldVerdict; met: HoldMet[] }>;
}

export interface RoundOutcome {
  kills: ChaosKill[];
  completed: boolean;
  ended: RoundEnd;
  /** Each hold a run of the round ended at, and what chaos did about it, in order. */
  holds: HoldMet[];
  /** Ended held where expected: a run started once more after it held there too (exit 7). */
  heldAgain: boolean;
  violations: string[];
  /** The first kill's window, for the report. */
  firstWindowMs: number | undefined;
}

/** One kill in this many lands during start-up (loading, claiming, resuming), not while processing. */
const START_UP_SHARE = 0.2;
/** One kill in this many waits for the next checkpoint line and follows it at once. */
const AFTER_CHECKPOINT_SHARE = 0.2;
/** Of a job that holds, one kill in this many (while a hold is still ahead) waits for the run's `guard:held` line and follows it at once. */
const AT_HOLD_SHARE = 0.2;
/** The shortest window: below it a kill would only ever catch the resume. */
const MIN_WINDOW_MS = 5;
/** How long the final run, and workers woken from SIGSTOP, may take to finish. */
const FINISH_MS = 300_000;

/**
 * Kills runs of the job on one scratch store until `toLand` have landed on a live worker of a
 * job not yet complete, or the job completes first; then runs it to completion.
 *
 * Each kill is scheduled against the job's progress, not the clock alone: its window is the
 * work still ahead (the records not yet committed by a checkpoint, at the fastest `Pace` seen)
 * over the kills still to land, but at least two, so
 * the kills spread over the whole job and the last one, at most half way through what is left,
 * still finds work ahead of it.
 *
 * A run that ends held (exit 7) is no crash: `onHeld` approves what chaos was told to approve
 * (between runs, as a person would) and the round goes on, the kills landing on the runs after
 * the approval too; or the round ends held where expected, and one more run must hold there
 * again; or where chaos was not told what to do.
 */
export async function chaosRound(plan: RoundPlan): Promise<RoundOutcome> {
  const { random, timing } = plan;
  const kills: ChaosKill[] = [];
  const violations: string[] = [];
  const woken: ChaosWorker[] = [];
  const committed = new Map<string, number>();
  const holds: HoldMet[] = [];
  let ended: RoundEnd | undefined;
  let heldAgain = false;
  let firstWindowMs: number | undefined;
  let current: ChaosWorker | undefined;
  /** A hold is open that chaos has not approved (a worker opened it, or a run ended held at it). */
  let holdOpen = false;
  /** Runs that ended held, each hold approved: how many of the clean run's holds are behind. */
  let holdsBehind = 0;
  const holdAhead = () => !holdOpen && holdsBehind < timing.holds;
  const progress = (worker: ChaosWorker | undefined) => {
    if (timing.records <= 0) return 0;
    let done = 0;
    for (const [shard, processed] of committed) done += Math.max(processed, worker?.committed.get(shard) ?? 0);
    for (const [shard, processed] of worker?.committed ?? []) if (!committed.has(shard)) done += processed;
    return Math.min(1, done / timing.records);
  };
  const { pace } = plan;
  const faster = (msPerRecord: number) => {
    pace.msPerRecord = Math.min(pace.msPerRecord ?? msPerRecord, msPerRecord);
  };
  const merge = (worker: ChaosWorker) => {
    for (const [shard, processed] of worker.committed) committed.set(shard, Math.max(processed, committed.get(shard) ?? 0));
    const seen = msPerRecord(worker);
    // The faster one: a window too short only slows the job's progress, one too long lets it finish first.
    if (seen !== undefined && timing.records > 0) faster(seen);
    if (worker.holdOpenedAt !== undefined) holdOpen = true;
  };
  /** A run that went to the end: the whole job's share it did, in the time it took. */
  const learnFromEnd = (worker: ChaosWorker, shareAtStart: number) => {
    if (worker.beganAt === undefined || worker.lastEventAt === undefined) return;
    const ms = worker.lastEventAt - worker.beganAt;
    if (timing.records > 0 && shareAtStart < 1) faster(ms / (timing.records * (1 - shareAtStart)));
    else if (timing.records <= 0 && worker.beganProcessed === 0) pace.processMs = Math.min(pace.processMs, ms);
  };
  /** A run ended held: chaos approves as told and the round goes on (true), or the round ends there. */
  const answerHold = async (): Promise<boolean> => {
    let answer: Awaited<ReturnType<RoundPlan['onHeld']>>;
    try {
      answer = await plan.onHeld();
    } catch (error) {
      violations.push(firstLine(error));
      return false;
    }
    holds.push(...answer.met);
    if (answer.verdict === 'go-on') {
      holdOpen = false;
      holdsBehind++;
      return true;
    }
    holdOpen = true;
    ended = answer.verdict;
    return false;
  };
  const holdPhase = (worker: ChaosWorker): HoldPhase | null => {
    if (timing.holds === 0 && holds.length === 0) return null;
    if (worker.holdOpenedAt !== undefined) return 'at-hold';
    return holdOpen ? 'while-held' : holdsBehind > 0 ? 'after-approval' : 'before-hold';
  };
  const shareAtStart = new Map<ChaosWorker, number>();
  const start = () => {
    const worker = startWorker(plan.ckptBin, plan.args, plan.env);
    shareAtStart.set(worker, progress(undefined));
    return worker;
  };
  const workLeftMs = (worker: ChaosWorker) => (pace.msPerRecord === undefined ? pace.processMs : pace.msPerRecord * timing.records * (1 - progress(worker)));
  const failed = (worker: ChaosWorker, exit: { code: number | null; signal: NodeJS.Signals | null; stderr: string }) =>
    `a run of the job exited ${exit.code ?? exit.signal} under chaos: ${why(worker, exit.stderr)}`;

  while (kills.length < plan.toLand && ended === undefined && violations.length === 0) {
    current ??= start();
    const worker = current;
    const index = plan.firstIndex + kills.length;
    // A run gets half its window's work done on average (less its rework), so the kills cover most
    // of the job; at least two, so even the last one's far end leaves half the work left undone.
    const windowMs = Math.max(MIN_WINDOW_MS, workLeftMs(worker) / Math.max(2, plan.toLand - kills.length));
    firstWindowMs ??= windowMs;
    const draw = random();
    let aim: ChaosAim = draw < START_UP_SHARE ? 'start-up' : draw < START_UP_SHARE + AFTER_CHECKPOINT_SHARE ? 'after-checkpoint' : 'mid-run';
    // Only for a job that holds, so the schedule of one that never does is what it always was.
    if (aim === 'mid-run' && timing.holds > 0 && draw < START_UP_SHARE + AFTER_CHECKPOINT_SHARE + AT_HOLD_SHARE && holdAhead()) aim = 'at-hold';
    let alive: boolean;
    if (aim === 'start-up') alive = await stillRunningAfter(worker, random() * timing.startUpMs);
    else if (!(await worker.began)) alive = false;
    // Waits past a window shorter than the checkpoint interval, for it to see one; not past half
    // the work left (a job that checkpoints only at its end is then killed mid-chunk instead).
    else if (aim === 'after-checkpoint') {
      alive = await nextCheckpointWithin(worker, Math.max(windowMs, Math.min(1.5 * timing.checkpointEveryMs, workLeftMs(worker) / 2)));
    } else if (aim === 'at-hold') alive = await nextHoldWithin(worker, Math.max(windowMs, workLeftMs(worker)));
    else alive = await stillRunningAfter(worker, random() * windowMs);
    const atProgress = progress(worker);
    if (!alive || worker.finished) {
      const exit = await worker.exit;
      merge(worker);
      current = undefined;
      if (exit.code === 0) {
        ended = 'completed';
        learnFromEnd(worker, shareAtStart.get(worker) ?? 0);
      } else if (exit.code === ExitCode.held) {
        if (await answerHold()) continue;
      } else violations.push(failed(worker, exit));
      break;
    }
    if (plan.stopAt.has(index)) {
      worker.child.kill('SIGSTOP');
      kills.push(
        describeKill(
          worker,
          { kind: 'stop', aim, round: plan.round, at: Date.now(), progress: atProgress, holdPhase: holdPhase(worker) },
          plan.nearCheckpointMs,
        ),
      );
      // A second worker takes the shard once the lease lapses; then the first wakes up, fenced.
      current = start();
      // Not past lease + 2 s: frozen inside a SQLite write, the first one holds the file's lock
      // (and a job's own files' locks), and the second must not time out waiting for it.
      const takenOver = await Promise.race([current.began, stillRunningAfter(current, plan.leaseMs + 2000).then(() => false)]);
      if (takenOver) await stillRunningAfter(current, random() * Math.min(windowMs, 1000));
      worker.child.kill('SIGCONT');
      woken.push(worker);
      continue;
    }
    const killedAt = Date.now();
    const phase = holdPhase(worker);
    worker.child.kill('SIGKILL');
    const exit = await worker.exit;
    merge(worker);
    current = undefined;
    // Read after its death: every line it printed before it is in, so the place is the truth.
    if (exit.signal === 'SIGKILL' && !worker.finished && worker.failure === undefined && worker.held === undefined) {
      kills.push(describeKill(worker, { kind: 'kill', aim, round: plan.round, at: killedAt, progress: atProgress, holdPhase: phase }, plan.nearCheckpointMs));
    } else if (exit.code === 0 || (worker.finished && worker.failure === undefined)) {
      // Too late: the job had completed; this kill tested nothing and is not counted.
      ended = 'completed';
      learnFromEnd(worker, shareAtStart.get(worker) ?? 0);
    } else if (exit.code === ExitCode.held || worker.held !== undefined) {
      // Too late as well: the run had ended held (and said so).
      if (!(await answerHold())) break;
    } else {
      violations.push(failed(worker, exit));
    }
  }
  // Resume until the job ends: the last worker (or a new one) runs to the end, and so must any woken one.
  while (ended === undefined && violations.length === 0) {
    current ??= start();
    const exit = await finished(current);
    const last = current;
    current = undefined;
    if (exit.code === 0) ended = 'completed';
    else if (exit.code === ExitCode.held) await answerHold();
    else violations.push(`the job did not complete after the crashes: exit ${exit.code ?? exit.signal}: ${why(last, exit.stderr)}`);
  }
  // A second worker started for a SIGSTOP the round ended on: it must not outlive the round.
  if (current !== undefined) await finished(current);
  for (const worker of woken) {
    const exit = await finished(worker);
    // Exit 4 with a `lost` summary: its runs were fenced out and the others completed the instance, as they should.
    if (exit.code !== 0 && exit.code !== ExitCode.held && !(exit.code === ExitCode.refused && worker.lost))
      violations.push(`a worker woken after SIGSTOP exited ${exit.code ?? exit.signal}: ${why(worker, exit.stderr)}`);
  }
  // Held where expected: the held instance, resumed once more, must hold again (the store then says where).
  if (ended === 'held' && violations.length === 0) {
    const again = start();
    const exit = await finished(again);
    heldAgain = exit.code === ExitCode.held;
    if (!heldAgain) {
      const what = exit.code === 0 ? 'completed: it went past the hold without an approval' : `exited ${exit.code ?? exit.signal}: ${why(again, exit.stderr)}`;
      violations.push(`run again after it held, the job ${what}`);
    }
  }
  return { kills, completed: ended === 'completed', ended: ended ?? 'unfinished', holds, heldAgain, violations, firstWindowMs };
}

/** Where a kill fell, from the worker's JSON lines: start-up, its shard done, just after it opened a hold, right after a checkpoint, or mid-chunk. */
function describeKill(
  worker: ChaosWorker,
  kill: { kind: 'kill' | 'stop'; aim: ChaosAim; round: number; at: number; progress: number; holdPhase: HoldPhase | null },
  nearCheckpointMs: number,
): ChaosKill {
  const sinceCheckpointMs = worker.lastCheckpointAt === undefined ? null : Math.max(0, kill.at - worker.lastCheckpointAt);
  let place: KillPlace = 'mid-chunk';
  if (worker.beganAt === undefined) place = 'start-up';
  else if (worker.shardDone) place = 'shard-done';
  else if (worker.holdOpenedAt !== undefined) place = 'at-hold';
  else if (sinceCheckpointMs !== null && sinceCheckpointMs <= nearCheckpointMs) place = 'after-checkpoint';
  const inEffect = [...worker.openEffects.keys()];
  return {
    kind: kill.kind,
    pid: worker.pid,
    round: kill.round,
    aim: kill.aim,
    place,
    holdPhase: kill.holdPhase,
    inEffect,
    lastEvent: worker.lastEvent ?? null,
    sinceCheckpointMs,
    atRiskMs: worker.beganAt === undefined ? null : Math.max(0, kill.at - Math.max(worker.beganAt, worker.lastCheckpointAt ?? 0)),
    progress: Math.round(kill.progress * 1000) / 1000,
  };
}

async function finished(worker: ChaosWorker): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  if (await stillRunningAfter(worker, FINISH_MS)) worker.child.kill('SIGKILL');
  return worker.exit;
}

export function why(worker: ChaosWorker, stderr: string): string {
  return worker.failure ?? lastLine(stderr);
}

export function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}
