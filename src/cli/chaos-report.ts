import { firstLine } from '../errors.ts';
import { type LostWork, lostWorkByRun } from '../job/policy/progress-mark.ts';
import type { RunInfo, StoredEvent } from '../store/store.ts';
import type { HoldMet } from './chaos-holds.ts';
import { formatCount, formatMs } from './format.ts';

/**
 * What a kill was scheduled to catch: the start-up, the moment after the next checkpoint, the
 * moment the run opens a hold (a job that holds), or a random moment of the run.
 */
export type ChaosAim = 'start-up' | 'after-checkpoint' | 'at-hold' | 'mid-run';

/**
 * Where a kill fell, read from the worker's JSON lines up to its death: before its first
 * run:start/run:resume; after its shard completed (shard:complete or run:end); after it opened a
 * hold (its guard:held line), while it stops there; within the near-checkpoint time of a
 * checkpoint line; else mid-chunk.
 */
export type KillPlace = 'start-up' | 'after-checkpoint' | 'mid-chunk' | 'shard-done' | 'at-hold';

/** How a round ended: the job completed; held where expected; held where chaos was not told what to do; or neither (a violation). */
export type RoundEnd = 'completed' | 'held' | 'not-told' | 'unfinished';

/**
 * Of a job that holds, where a kill fell against its holds in the round: before the first, as
 * the worker opened one, while one is open (a held instance resumed), after an approval.
 */
export type HoldPhase = 'before-hold' | 'at-hold' | 'while-held' | 'after-approval';

/** A SIGKILL or SIGSTOP that `ckpt chaos` sent and that landed on a live worker of a job not yet complete. */
export interface ChaosKill {
  kind: 'kill' | 'stop';
  pid: number;
  /** The chaos round (a fresh scratch store) it fell in. */
  round: number;
  aim: ChaosAim;
  place: KillPlace;
  /** Against the round's holds, for a job that holds; else null. */
  holdPhase: HoldPhase | null;
  /** Effects the worker had started and not reported done (effect:start with no effect:done): killed inside them. */
  inEffect: string[];
  /** The last event it printed, progress and log lines aside. */
  lastEvent: string | null;
  sinceCheckpointMs: number | null;
  /** Time since the worker's last checkpoint (or since it began): the work a kill put at risk. */
  atRiskMs: number | null;
  /** The share of the clean run's records committed by checkpoints when it fell (0 to 1). */
  progress: number;
}

/** The job's own check of its end state, and what it said. */
export interface InvariantResult {
  source: 'invariant export' | 'verify export' | 'check script' | 'none';
  ok: boolean;
  message: string;
}

export interface ChaosReport {
  job: string;
  params: { [key: string]: unknown };
  seed: number;
  dir: string;
  store: string;
  cleanRunMs: number;
  windowMs: number;
  nearCheckpointMs: number;
  kills: {
    requested: number;
    /** SIGKILLs and SIGSTOPs that landed on a live worker of a job not yet complete. */
    landed: number;
    /** Kills sent that came after the job had committed its end, so tested nothing: not counted. */
    late: number;
    sigkills: number;
    duringStartUp: number;
    sigstops: number;
    where: { [place in KillPlace]: number };
    /** Of a job that holds: kills by where they fell against its holds; else null. */
    acrossHolds: { [phase in HoldPhase]: number } | null;
    /** Kills that fell inside an effect. */
    inEffect: number;
    /** The lowest and highest share of the job committed when a kill fell. */
    progress: { min: number; max: number } | null;
    list: ChaosKill[];
  };
  /** Each round: a fresh scratch store, run until complete under its share of the kills. */
  rounds: { round: number; dir: string; store: string; completed: boolean; kills: number }[];
  runs: { total: number; byOutcome: { [outcome: string]: number }; resumed: number };
  rework: { policy: string; perCrash: (LostWork & { round: number; run: number; bound: string; within: boolean })[] };
  effects: { inDoubt: number; verifiedDone: number; verifiedNotDone: number; replayedWithoutVerify: number; replayedKeys: string[] };
  invariant: InvariantResult;
  completed: boolean;
  /** Of a job that held (exit 7), what chaos was told and what it met; else null. */
  holds: {
    /** The flags that told chaos what to do at a hold. */
    told: string[];
    /** Each hold a run ended at, in each round, and what chaos did: approved, expected, or not told. */
    met: (HoldMet & { round: number })[];
    /** The holds every round ended held at (as expected), or null when a round did not end held. */
    endedHeld: string[] | null;
    /** Each round that ended held was run once more and held again. */
    heldAgain: boolean;
  } | null;
  /** A hold chaos was not told about, and the flags to pass (exit 2), or null. */
  notTold: string | null;
  /** Why fewer kills landed than were asked (exit 6), or null. */
  shortfall: string | null;
  violations: string[];
}

/** One round as it happened: its kills, and its store's runs and events once it completed. */
export interface ChaosRoundFacts {
  round: number;
  dir: string;
  store: string;
  kills: ChaosKill[];
  /** Kills that came after the job had committed its end (see `killsAfterTheEnd`): not counted. */
  late: number;
  runs: RunInfo[];
  events: StoredEvent[];
  invariant: InvariantResult;
  completed: boolean;
  /** How it ended: completed, held where expected, held where chaos was not told what to do, or neither. */
  ended: RoundEnd;
  /** The holds runs ended at and what chaos did, in order. */
  holds: HoldMet[];
  /** Ended held: a run started once more held again. */
  heldAgain: boolean;
  /** The holds open at its end. */
  held: string[];
  /** Violations seen while running (a worker that failed, a job that never completed, a hold that moved). */
  violations: string[];
}

export interface ChaosFacts {
  job: string;
  params: { [key: string]: unknown };
  seed: number;
  dir: string;
  cleanRunMs: number;
  windowMs: number;
  nearCheckpointMs: number;
  requestedKills: number;
  rounds: ChaosRoundFacts[];
  shortfall: string | undefined;
  /** The flags that told chaos what to do at a hold. */
  holdFlags: string[];
  /** What to pass for a hold chaos was not told about (a round ended there). */
  notTold: string | undefined;
}

type ReportKills = ChaosReport['kills'];

/** Slack on a time bound: the boundary is checked when a record arrives, then drained and committed, on a busy machine. */
const TIME_SLACK_MS = 1000;

/** The pid in a run's worker name (`host:pid`). */
function pidOf(worker: string): number {
  return Number(worker.split(':').at(-1));
}

/**
 * SIGKILLs that came after the job had committed its end though the worker had not printed it yet:
 * the killed worker's last run completed, and no run began after it; or the worker had recorded
 * that it ended held, every run of it ended (none crashed by the kill). They tested nothing.
 */
export function killsAfterTheEnd(kills: ChaosKill[], runs: RunInfo[]): Set<ChaosKill> {
  const late = new Set<ChaosKill>();
  const lastId = Math.max(0, ...runs.map((run) => run.id));
  // A SIGSTOPped worker that finishes the job once woken was stopped mid-job all the same.
  for (const kill of kills.filter((candidate) => candidate.kind === 'kill')) {
    const mine = runs.filter((run) => pidOf(run.worker) === kill.pid).sort((a, b) => b.id - a.id);
    const own = mine[0];
    if (own !== undefined && own.outcome === 'completed' && own.id === lastId) late.add(kill);
    if (own !== undefined && own.outcome === 'held' && mine.every((run) => run.outcome !== 'crashed')) late.add(kill);
  }
  return late;
}

/** Reads each round's runs and events against what chaos did: rework per crash, effects settled, violations. */
export function chaosReport(facts: ChaosFacts): ChaosReport {
  const violations: string[] = [];
  const perCrash: ChaosReport['rework']['perCrash'] = [];
  const byOutcome: { [outcome: string]: number } = {};
  const inDoubt: StoredEvent[] = [];
  let policy = '';
  let invariant: InvariantResult | undefined;
  for (const round of facts.rounds) {
    violations.push(...round.violations.map((violation) => (facts.rounds.length > 1 ? `round ${round.round}: ${violation}` : violation)));
    policy ||= reworkOfRound(round, perCrash, violations);
    inDoubt.push(...round.events.filter((event) => event.type === 'effect:in-doubt'));
    for (const run of round.runs) byOutcome[run.outcome] = (byOutcome[run.outcome] ?? 0) + 1;
    if (invariant === undefined || (invariant.ok && !round.invariant.ok)) invariant = round.invariant;
  }
  invariant ??= { source: 'none', ok: true, message: '' };
  if (!invariant.ok) violations.push(`invariant (${invariant.source}): ${invariant.message}`);
  const resolution = (name: string) => inDoubt.filter((event) => event.data.resolution === name);
  const replayed = resolution('run-again');
  const kills = facts.rounds.flatMap((round) => round.kills);
  const where: { [place in KillPlace]: number } = { 'start-up': 0, 'after-checkpoint': 0, 'mid-chunk': 0, 'shard-done': 0, 'at-hold': 0 };
  for (const kill of kills) where[kill.place]++;
  const met = facts.rounds.flatMap((round) => round.holds.map((hold) => ({ ...hold, round: round.round })));
  const held = met.length > 0 || facts.holdFlags.length > 0;
  let acrossHolds: ReportKills['acrossHolds'] = null;
  if (held) {
    acrossHolds = { 'before-hold': 0, 'at-hold': 0, 'while-held': 0, 'after-approval': 0 };
    for (const kill of kills) if (kill.holdPhase !== null) acrossHolds[kill.holdPhase]++;
  }
  const endedHeld = facts.rounds.length > 0 && facts.rounds.every((round) => round.ended === 'held') ? (facts.rounds[0]?.held ?? []) : null;
  const runs = facts.rounds.flatMap((round) => round.runs);
  return {
    job: facts.job,
    params: facts.params,
    seed: facts.seed,
    dir: facts.dir,
    store: facts.rounds[0]?.store ?? '',
    cleanRunMs: facts.cleanRunMs,
    windowMs: facts.windowMs,
    nearCheckpointMs: facts.nearCheckpointMs,
    kills: {
      requested: facts.requestedKills,
      landed: kills.length,
      late: facts.rounds.reduce((sum, round) => sum + round.late, 0),
      sigkills: kills.filter((kill) => kill.kind === 'kill').length,
      duringStartUp: kills.filter((kill) => kill.kind === 'kill' && kill.place === 'start-up').length,
      sigstops: kills.filter((kill) => kill.kind === 'stop').length,
      where,
      acrossHolds,
      inEffect: kills.filter((kill) => kill.inEffect.length > 0).length,
      progress: kills.length === 0 ? null : { min: Math.min(...kills.map((kill) => kill.progress)), max: Math.max(...kills.map((kill) => kill.progress)) },
      list: kills,
    },
    rounds: facts.rounds.map((round) => ({ round: round.round, dir: round.dir, store: round.store, completed: round.completed, kills: round.kills.length })),
    runs: { total: runs.length, byOutcome, resumed: runs.filter((run) => run.resumedFrom !== null).length },
    rework: { policy, perCrash },
    effects: {
      inDoubt: inDoubt.length,
      verifiedDone: resolution('verified-done').length,
      verifiedNotDone: resolution('verified-not-done').length,
      replayedWithoutVerify: replayed.length,
      replayedKeys: replayed.map((event) => String(event.data.key)),
    },
    invariant,
    completed: facts.rounds.length > 0 && facts.rounds.every((round) => round.completed),
    holds: held
      ? {
          told: facts.holdFlags,
          met,
          endedHeld,
          heldAgain: facts.rounds.some((round) => round.ended === 'held') && facts.rounds.every((round) => round.ended !== 'held' || round.heldAgain),
        }
      : null,
    notTold: facts.notTold ?? null,
    shortfall: facts.shortfall ?? null,
    violations,
  };
}

/** Each crashed run's lost work against its policy's bound; returns the policy's description. */
function reworkOfRound(round: ChaosRoundFacts, perCrash: ChaosReport['rework']['perCrash'], violations: string[]): string {
  const lost = lostWorkByRun(round.runs);
  const killedByPid = new Map(round.kills.map((kill) => [kill.pid, kill]));
  const name = (run: RunInfo) => (round.round > 1 ? `round ${round.round} run ${run.id}` : `run ${run.id}`);
  let policy = '';
  for (const run of round.runs.filter((candidate) => candidate.outcome === 'crashed').sort((a, b) => a.id - b.id)) {
    const work = lost.get(run.id);
    if (work === undefined) continue;
    policy ||= typeof run.stats.policy === 'string' ? run.stats.policy : '';
    const { intervalRecords, intervalMs } = run.stats;
    const kill = killedByPid.get(pidOf(run.worker));
    // The truth is at least the reported count minus the mark step: only that is a sure breach.
    const sure = work.records - (work.atMost ? work.markStep : 0);
    let bound = 'none known';
    let within = true;
    if (typeof intervalMs === 'number') {
      bound = `${formatMs(intervalMs)} of work`;
      const atRisk = kill?.atRiskMs ?? null;
      within = atRisk === null || atRisk <= intervalMs + Math.max(TIME_SLACK_MS, intervalMs / 2);
      if (!within) violations.push(`rework: ${name(run)} had ${formatMs(atRisk ?? 0)} of work at risk when killed; the policy bounds it to ${bound}`);
    } else if (typeof intervalRecords === 'number') {
      bound = `${formatCount(intervalRecords)} records`;
      within = sure <= intervalRecords;
      if (!within) violations.push(`rework: ${name(run)} lost at least ${formatCount(sure)} records past its checkpoint; the policy bounds it to ${bound}`);
    }
    perCrash.push({ ...work, round: round.round, run: run.id, bound, within });
  }
  return policy;
}

/** The report a person reads. */
export function describeChaos(report: ChaosReport): string {
  const params = Object.keys(report.params).length > 0 ? ` ${JSON.stringify(report.params)}` : '';
  const { kills, runs, rework, effects, invariant } = report;
  const outcomes = Object.entries(runs.byOutcome)
    .map(([outcome, count]) => `${count} ${outcome}`)
    .join(', ');
  const counts = rework.perCrash.map((crash) => `${crash.atMost ? '≤' : ''}${formatCount(crash.records)}${crash.within ? '' : '!'}`);
  const largest = rework.perCrash.reduce<(typeof rework.perCrash)[number] | undefined>(
    (max, crash) => (max === undefined || crash.records > max.records ? crash : max),
    undefined,
  );
  const percent = (share: number) => `${Math.round(share * 100)} %`;
  const lines = [
    `ckpt chaos: ${report.job}${params}, seed ${report.seed} (--seed ${report.seed} repeats this schedule)`,
    `  scratch     ${report.dir} (store ${report.store}; the job's own state under CKPT_CHAOS_DIR=${report.rounds[0]?.dir ?? report.dir}/job)`,
    `  clean run   ${formatMs(report.cleanRunMs)} uncrashed; each kill falls at random within the work left over the kills still to land (${formatMs(report.windowMs)} at first) of a run beginning its records, right after its next checkpoint (1 in 5), or during its start-up (1 in 5)`,
    `  kills       ${kills.landed} of ${kills.requested} asked landed on a live worker of a job not yet complete: ${kills.sigkills} SIGKILLs (${kills.duringStartUp} during start-up), ${kills.sigstops} SIGSTOPs past the lease with a second worker taking over${kills.late > 0 ? `; ${kills.late} more came after the job had committed its end${report.holds === null ? '' : ' or its run had recorded its hold'} (not counted)` : ''}`,
  ];
  if (kills.landed > 0) {
    const progress = kills.progress === null ? '' : `; at ${percent(kills.progress.min)} to ${percent(kills.progress.max)} of the job committed`;
    lines.push(
      `  where       ${kills.where['start-up']} during start-up, ${kills.where['after-checkpoint']} right after a checkpoint (within ${formatMs(report.nearCheckpointMs)}), ${kills.where['mid-chunk']} mid-chunk, ${kills.where['shard-done']} after the shard completed${report.holds === null ? '' : `, ${kills.where['at-hold']} just after the run opened a hold`}; ${kills.inEffect} inside an effect (effect:start with no effect:done)${progress}`,
    );
  }
  if (report.rounds.length > 1) {
    lines.push(
      `  rounds      ${report.rounds.length}: the job ${report.holds?.endedHeld ? 'held' : 'completed'} before all kills had landed, so it ran again from the start on a fresh scratch store (${report.rounds
        .slice(1)
        .map((round) => `round ${round.round}: ${round.kills} kills, ${round.store}`)
        .join('; ')})`,
    );
  }
  lines.push(...describeHolds(report));
  if (report.shortfall !== null) lines.push(`  SHORT       only ${kills.landed} of ${kills.requested} kills landed: ${report.shortfall}`);
  lines.push(`  runs        ${runs.total}: ${outcomes}; ${runs.resumed} resumed from a checkpoint`);
  if (rework.perCrash.length === 0) lines.push('  rework      no crashed run had done work past its checkpoint');
  else {
    lines.push(
      `  rework      records each crashed run had done past its checkpoint, redone after it (policy ${rework.policy || 'unknown'}; "≤": a bound from the progress mark):`,
      `              ${counts.join(' ')}`,
      `              largest ${largest?.atMost ? 'at most ' : ''}${formatCount(largest?.records ?? 0)} (run ${largest?.run}${(largest?.round ?? 1) > 1 ? ` of round ${largest?.round}` : ''}${largest?.atMost ? `; the truth is at most one progress-mark step, ${formatCount(largest.markStep)}, less` : ''}), bound ${largest?.bound}: ${rework.perCrash.every((crash) => crash.within) ? 'every crash within it' : 'BREACHED (marked !)'}`,
    );
  }
  const settled = effects.verifiedDone + effects.verifiedNotDone;
  const replayed =
    effects.replayedWithoutVerify === 0
      ? 'none run again blind'
      : `${effects.replayedWithoutVerify} run again without verify (only safe if idempotent): ${effects.replayedKeys.slice(0, 5).join(', ')}${effects.replayedKeys.length > 5 ? ', …' : ''}`;
  lines.push(
    `  effects     ${effects.inDoubt} in doubt after a kill: ${settled} settled by verify (${effects.verifiedDone} had happened, ${effects.verifiedNotDone} had not), ${replayed}`,
    `  invariant   ${invariant.source === 'none' ? invariant.message : `${invariant.ok ? 'ok' : 'FAILED'} (${invariant.source})${invariant.message ? `: ${invariant.message}` : ''}`}`,
  );
  for (const violation of report.violations) lines.push(`  VIOLATION   ${firstLine(violation)}`);
  let result = `${report.violations.length} violation(s); the scratch directory is kept for a look`;
  const endedHeld = report.holds?.endedHeld ? `; held at ${report.holds.endedHeld.join(', ')} (as expected)` : '';
  if (report.violations.length === 0) {
    result = report.shortfall === null ? `no violation${endedHeld}` : `no violation${endedHeld}, but the job was not crashed as often as asked (exit 6)`;
    if (report.notTold !== null) result = `${report.notTold} (exit 2)`;
  }
  lines.push(`  result      ${result}`);
  return lines.join('\n');
}

/** The holds met and what chaos did at each, and where the kills fell against them. */
function describeHolds(report: ChaosReport): string[] {
  const { holds, kills } = report;
  if (holds === null) return [];
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;
  const lines: string[] = [];
  for (const name of new Set(holds.met.map((met) => met.hold))) {
    const all = holds.met.filter((met) => met.hold === name);
    const first = all[0] as (typeof all)[number];
    const times = `${plural(all.length, 'time')} in ${plural(new Set(all.map((met) => met.round)).size, 'round')}`;
    const at = all.flatMap((met) => (met.limit === null ? [] : [met.limit.used]));
    let what = `${first.limit === null ? first.what : `the limit on ${first.limit.kind} effects`}: held ${times}${at.length > 0 ? ` (at ${at.join(', ')} started)` : ''}`;
    if (first.action === 'approved') {
      const by = [...new Set(all.flatMap((met) => met.by))].join(', ');
      what += `, each ${first.raise === null ? 'passed' : `raised by ${first.raise}`} by ${by} (${first.flag})`;
    } else if (first.action === 'expected') what += `, as expected (${first.flag})`;
    else what += ', not told what to do there';
    lines.push(`${lines.length === 0 ? '  holds       ' : '              '}${what}`);
  }
  if (lines.length === 0) lines.push(`  holds       none met (told ${holds.told.join(' ')})`);
  if (holds.endedHeld !== null) {
    lines.push(
      `              every round ended held at ${holds.endedHeld.join(', ')} (as expected)${holds.heldAgain ? '; run once more, it held there again' : ''}`,
    );
  }
  const across = kills.acrossHolds;
  if (across !== null && kills.landed > 0) {
    lines.push(
      `              kills: ${across['before-hold']} before the first hold, ${across['at-hold']} just after a run opened one, ${across['while-held']} while held (the held instance resumed), ${across['after-approval']} after an approval`,
    );
  }
  return lines;
}
