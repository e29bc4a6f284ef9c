import { firstLine } from '../errors.ts';
import { type LostWork, lostWorkByRun } from '../job/progress-mark.ts';
import type { RunInfo, StoredEvent } from '../store/store.ts';
import { formatCount, formatMs } from './format.ts';

/** A SIGKILL or SIGSTOP that `ckpt chaos` sent, and what the worker was doing then. */
export interface ChaosKill {
  kind: 'kill' | 'stop';
  pid: number;
  /** 'start-up': before the worker began processing (loading, claiming, resuming). */
  phase: 'start-up' | 'processing';
  /** Time since the worker's last checkpoint (or since it began): the work a kill put at risk. */
  atRiskMs: number | null;
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
  kills: { requested: number; sigkills: number; duringStartUp: number; sigstops: number };
  runs: { total: number; byOutcome: { [outcome: string]: number }; resumed: number };
  rework: { policy: string; perCrash: (LostWork & { run: number; bound: string; within: boolean })[] };
  effects: { inDoubt: number; verifiedDone: number; verifiedNotDone: number; replayedWithoutVerify: number; replayedKeys: string[] };
  invariant: InvariantResult;
  completed: boolean;
  violations: string[];
}

export interface ChaosFacts {
  job: string;
  params: { [key: string]: unknown };
  seed: number;
  dir: string;
  store: string;
  cleanRunMs: number;
  windowMs: number;
  requestedKills: number;
  kills: ChaosKill[];
  runs: RunInfo[];
  events: StoredEvent[];
  invariant: InvariantResult;
  completed: boolean;
  /** Violations seen while running (a worker that failed, a job that never completed). */
  violations: string[];
}

/** Slack on a time bound: the boundary is checked when a record arrives, then drained and committed, on a busy machine. */
const TIME_SLACK_MS = 1000;

/** Reads the store's runs and events against what chaos did: rework per crash, effects settled, violations. */
export function chaosReport(facts: ChaosFacts): ChaosReport {
  const violations = [...facts.violations];
  const lost = lostWorkByRun(facts.runs);
  const killedByPid = new Map(facts.kills.map((kill) => [kill.pid, kill]));
  const perCrash: ChaosReport['rework']['perCrash'] = [];
  let policy = '';
  for (const run of facts.runs.filter((candidate) => candidate.outcome === 'crashed').sort((a, b) => a.id - b.id)) {
    const work = lost.get(run.id);
    if (work === undefined) continue;
    policy ||= typeof run.stats.policy === 'string' ? run.stats.policy : '';
    const { intervalRecords, intervalMs } = run.stats;
    const kill = killedByPid.get(Number(run.worker.split(':').at(-1)));
    // The truth is at least the reported count minus the mark step: only that is a sure breach.
    const sure = work.records - (work.atMost ? work.markStep : 0);
    let bound = 'none known';
    let within = true;
    if (typeof intervalMs === 'number') {
      bound = `${formatMs(intervalMs)} of work`;
      const atRisk = kill?.atRiskMs ?? null;
      within = atRisk === null || atRisk <= intervalMs + Math.max(TIME_SLACK_MS, intervalMs / 2);
      if (!within) violations.push(`rework: run ${run.id} had ${formatMs(atRisk ?? 0)} of work at risk when killed; the policy bounds it to ${bound}`);
    } else if (typeof intervalRecords === 'number') {
      bound = `${formatCount(intervalRecords)} records`;
      within = sure <= intervalRecords;
      if (!within) violations.push(`rework: run ${run.id} lost at least ${formatCount(sure)} records past its checkpoint; the policy bounds it to ${bound}`);
    }
    perCrash.push({ ...work, run: run.id, bound, within });
  }

  const inDoubt = facts.events.filter((event) => event.type === 'effect:in-doubt');
  const resolution = (name: string) => inDoubt.filter((event) => event.data.resolution === name);
  const replayed = resolution('run-again');
  const byOutcome: { [outcome: string]: number } = {};
  for (const run of facts.runs) byOutcome[run.outcome] = (byOutcome[run.outcome] ?? 0) + 1;
  if (!facts.invariant.ok) violations.push(`invariant (${facts.invariant.source}): ${facts.invariant.message}`);
  return {
    job: facts.job,
    params: facts.params,
    seed: facts.seed,
    dir: facts.dir,
    store: facts.store,
    cleanRunMs: facts.cleanRunMs,
    windowMs: facts.windowMs,
    kills: {
      requested: facts.requestedKills,
      sigkills: facts.kills.filter((kill) => kill.kind === 'kill').length,
      duringStartUp: facts.kills.filter((kill) => kill.kind === 'kill' && kill.phase === 'start-up').length,
      sigstops: facts.kills.filter((kill) => kill.kind === 'stop').length,
    },
    runs: { total: facts.runs.length, byOutcome, resumed: facts.runs.filter((run) => run.resumedFrom !== null).length },
    rework: { policy, perCrash },
    effects: {
      inDoubt: inDoubt.length,
      verifiedDone: resolution('verified-done').length,
      verifiedNotDone: resolution('verified-not-done').length,
      replayedWithoutVerify: replayed.length,
      replayedKeys: replayed.map((event) => String(event.data.key)),
    },
    invariant: facts.invariant,
    completed: facts.completed,
    violations,
  };
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
  const lines = [
    `ckpt chaos: ${report.job}${params}, seed ${report.seed} (--seed ${report.seed} repeats this schedule)`,
    `  scratch     ${report.dir} (store ${report.store}; the job's own state under CKPT_CHAOS_DIR=${report.dir}/job)`,
    `  clean run   ${formatMs(report.cleanRunMs)} uncrashed, so kills land at random within ${formatMs(report.windowMs)} of a run beginning its records, or during its start-up (1 in 5)`,
    `  kills       ${kills.sigkills} SIGKILLs of ${kills.requested} asked (${kills.duringStartUp} during start-up), ${kills.sigstops} SIGSTOPs past the lease with a second worker taking over${report.completed && kills.sigkills + kills.sigstops < kills.requested ? '; the job completed before the rest could land' : ''}`,
    `  runs        ${runs.total}: ${outcomes}; ${runs.resumed} resumed from a checkpoint`,
  ];
  if (rework.perCrash.length === 0) lines.push('  rework      no crashed run had done work past its checkpoint');
  else {
    lines.push(
      `  rework      records each crashed run had done past its checkpoint, redone after it (policy ${rework.policy || 'unknown'}; "≤": a bound from the progress mark):`,
      `              ${counts.join(' ')}`,
      `              largest ${largest?.atMost ? 'at most ' : ''}${formatCount(largest?.records ?? 0)} (run ${largest?.run}${largest?.atMost ? `; the truth is at most one progress-mark step, ${formatCount(largest.markStep)}, less` : ''}), bound ${largest?.bound}: ${rework.perCrash.every((crash) => crash.within) ? 'every crash within it' : 'BREACHED (marked !)'}`,
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
  lines.push(
    report.violations.length === 0
      ? '  result      no violation'
      : `  result      ${report.violations.length} violation(s); the scratch directory is kept for a look`,
  );
  return lines.join('\n');
}
