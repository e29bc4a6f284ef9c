// Turns the measurements of one bench run into bench/results.md: medians, ratios and targets.
import type { Summary } from './summary.ts';
import { type Backend, effectConcurrency, type VariantResult, variantNames } from './variants.ts';
import { type Workload, workloadNames, writesRows } from './workloads.ts';

export interface Cell {
  workload: Workload;
  variant: string;
  backend: Backend;
  records: number;
  runs: VariantResult[];
  unavailable?: string;
}

export interface BenchResults {
  date: string;
  quick: boolean;
  rounds: number;
  records: number;
  /** Records per workload ((a) runs ten times `records`); cells are shown per this many. */
  workloadRecords?: Record<Workload, number>;
  /** Records of the variants that commit per record (every: 1, DBOS); their times are scaled. */
  scaledRecords: number;
  machine: { cpus: number; model: string; node: string; loadBefore: number[]; loadAfter: number[]; minutes: number };
  postgres: string;
  /** Why MySQL rows are missing, when they are. */
  mysql?: string;
  cells: Cell[];
  /** (e)'s commit floor per store: the smallest durable commit, timed one at a time each round, the rounds pooled. */
  commitFloor?: CommitFloor[];
  resume: { system: string; done: number; ms: number; fromOpenMs?: number; fromOpenCpuMs?: number }[];
  rss: { records: number; ms: number; maxRssMb: number; checkpoints: number; policy: string };
  /** Parts measured again later by `BENCH_ONLY` runs (the rest are from the run above), oldest first. */
  remeasured?: Remeasured[];
}

export interface CommitFloor extends Summary {
  backend: Backend;
  /** The durability setting it ran under. */
  setting: string;
  /** Commits made first and not counted, each round. */
  warmup: number;
  /** Each round's median. */
  roundMedianMs: number[];
}

export interface Remeasured {
  /** The parts whose figures still come from this run (a later run may have measured some again). */
  parts: string[];
  /** What the run was asked for (`BENCH_ONLY`). */
  only?: string[];
  date: string;
  rounds: number;
  machine: BenchResults['machine'];
}

/**
 * An earlier run's results with the parts `only` names replaced by a later run's: each table
 * keeps its ratios within one run, and `remeasured` says which run each part comes from.
 */
export function mergeResults(earlier: BenchResults, later: BenchResults, only: string[]): BenchResults {
  const workloads = new Set<string>(only);
  const remeasured = (earlier.remeasured ?? [])
    .map((entry) => ({ ...entry, parts: entry.parts.filter((part) => !workloads.has(part)) }))
    .filter((entry) => entry.parts.length > 0);
  remeasured.push({ parts: only, only, date: later.date, rounds: later.rounds, machine: later.machine });
  const workloadRecords = { ...later.workloadRecords, ...earlier.workloadRecords } as Record<Workload, number>;
  for (const part of only)
    if (later.workloadRecords && part in later.workloadRecords) workloadRecords[part as Workload] = later.workloadRecords[part as Workload];
  return {
    ...earlier,
    workloadRecords,
    cells: [...earlier.cells.filter((cell) => !workloads.has(cell.workload)), ...later.cells],
    commitFloor: workloads.has('e') ? later.commitFloor : earlier.commitFloor,
    resume: workloads.has('resume') ? later.resume : earlier.resume,
    rss: workloads.has('rss') ? later.rss : earlier.rss,
    ...(later.mysql === undefined ? {} : { mysql: later.mysql }),
    remeasured,
  };
}

export const median = (values: number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Median time for the workload's records (variants run on fewer are scaled, and say so). */
export const perRun = (cell: Cell, records: number): number => (median(cell.runs.map((run) => run.ms)) * records) / cell.records;

/** How many records a workload's table is shown for. */
export const recordsOf = (results: BenchResults, workload: Workload): number => results.workloadRecords?.[workload] ?? results.records;

const backendNames: Record<Backend, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL', mysql: 'MySQL' };

const fmtMs = (ms: number) =>
  !Number.isFinite(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
const fmtRatio = (ratio: number) => (!Number.isFinite(ratio) ? '-' : ratio >= 10 ? `${ratio.toFixed(0)}×` : `${ratio.toFixed(2)}×`);
const pct = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)} %` : '-');

export function baselineOf(cells: Cell[], cell: Cell): Cell | undefined {
  const rows = writesRows(cell.workload);
  const variant =
    cell.workload === 'e'
      ? `hand-c${effectConcurrency(cell.variant)}`
      : rows
        ? cell.variant.endsWith('-again')
          ? 'batched-again'
          : 'batched'
        : cell.variant.endsWith('-async')
          ? 'plain-async'
          : 'plain';
  const backend = rows ? cell.backend : 'sqlite';
  return cells.find((other) => other.workload === cell.workload && other.variant === variant && other.backend === backend);
}

/** Checkpoint time of a run in ms, from the share the run summary reports. */
const checkpointMs = (run: VariantResult) => ((run.overheadPct ?? Number.NaN) * run.ms) / 100;

function table(results: BenchResults, workload: Workload): string[] {
  const cells = results.cells.filter((cell) => cell.workload === workload);
  const records = recordsOf(results, workload);
  // Runs that measured their CPU time get a column of it: on a loaded machine, the part of the wall time that was ours.
  const withCpu = cells.some((cell) => cell.runs.some((run) => run.cpuMs !== undefined));
  const cpuOf = (cell: Cell | undefined) =>
    cell === undefined ? Number.NaN : (median(cell.runs.map((run) => run.cpuMs ?? Number.NaN)) * records) / cell.records;
  const base = writesRows(workload) ? 'batched inserts (same backend)' : workload === 'a' ? 'plain loop (async variants: plain `for await`)' : 'plain loop';
  const lines = [
    `### ${workloadNames[workload]}`,
    '',
    `| variant | store | median for ${records.toLocaleString('en-US')} records | range | × ${base} | records/s | checkpoints | checkpoint time | interval chosen |${withCpu ? ' CPU time, median (× the same baseline) |' : ''}`,
    `| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |${withCpu ? ' ---: |' : ''}`,
  ];
  for (const cell of cells) {
    const name = variantNames[cell.variant] ?? cell.variant;
    const store = cell.variant.startsWith('seed')
      ? 'SQLite (one-row table)'
      : !writesRows(cell.workload) && cell.variant.startsWith('plain')
        ? '-'
        : backendNames[cell.backend];
    if (cell.unavailable || cell.runs.length === 0) {
      lines.push(`| ${name} | ${store} | ${cell.unavailable ? cell.unavailable.replace(/:.*$/, '') : 'no run'} | | | | | | |${withCpu ? ' |' : ''}`);
      continue;
    }
    const ms = perRun(cell, records);
    const times = cell.runs.map((run) => (run.ms * records) / cell.records);
    const baseline = baselineOf(results.cells, cell);
    const baseMs = baseline && baseline.runs.length > 0 ? perRun(baseline, records) : Number.NaN;
    const last = cell.runs.at(-1)!;
    const scaled = cell.records !== records ? ` (run over ${cell.records.toLocaleString('en-US')}, scaled)` : '';
    const interval =
      last.interval && cell.variant.startsWith('ckpt-') && cell.variant !== 'ckpt-1' && cell.variant !== 'ckpt-500'
        ? `${last.interval.records === null ? '' : `${last.interval.records.toLocaleString('en-US')} rec / `}${fmtMs(last.interval.ms ?? Number.NaN)} (${last.interval.reason})`
        : '';
    lines.push(
      `| ${name}${scaled} | ${store} | ${fmtMs(ms)} | ${fmtMs(Math.min(...times))}–${fmtMs(Math.max(...times))} | ${fmtRatio(ms / baseMs)} | ${Math.round((1000 * records) / ms).toLocaleString('en-US')} | ${last.checkpoints ?? '-'} | ${last.overheadPct === undefined ? '-' : pct(median(cell.runs.map((run) => run.overheadPct ?? Number.NaN)))} | ${interval} |${withCpu ? ` ${fmtMs(cpuOf(cell))} (${fmtRatio(cpuOf(cell) / cpuOf(baseline))}) |` : ''}`,
    );
  }
  return lines;
}

function find(results: BenchResults, workload: Workload, variant: string, backend: Backend): Cell | undefined {
  const cell = results.cells.find((one) => one.workload === workload && one.variant === variant && one.backend === backend);
  return cell && cell.runs.length > 0 ? cell : undefined;
}

function targets(results: BenchResults): string[] {
  const lines = ['## Targets', '', '| target | measured | met? |', '| --- | --- | --- |'];
  const mark = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? 'yes' : '**missed**');
  const a = recordsOf(results, 'a');
  const c = recordsOf(results, 'c');
  const ratio = (workload: Workload, variant: string, base: string, backend: Backend = 'sqlite') => {
    const ours = find(results, workload, variant, backend);
    const baseline = find(results, workload, base, backend);
    const records = recordsOf(results, workload);
    return ours && baseline ? { ours: perRun(ours, records), base: perRun(baseline, records), cell: ours } : undefined;
  };
  const sync = ratio('a', 'ckpt-auto', 'plain');
  lines.push(
    sync
      ? `| (a) synchronous job ≤ 1.15× the plain synchronous loop (${a.toLocaleString('en-US')} records, SQLite, default policy) | ${fmtMs(sync.ours)} against ${fmtMs(sync.base)}: ${fmtRatio(sync.ours / sync.base)} | ${mark(sync.ours / sync.base <= 1.15)} |`
      : '| (a) synchronous job ≤ 1.15× the plain loop | - | not measured |',
  );
  const async = ratio('a', 'ckpt-async', 'plain-async');
  lines.push(
    async
      ? `| (a) async job ≤ 1.3× a plain \`for await\` over the same async source | ${fmtMs(async.ours)} against ${fmtMs(async.base)}: ${fmtRatio(async.ours / async.base)} | ${mark(async.ours / async.base <= 1.3)} |`
      : '| (a) async job ≤ 1.3× a plain `for await` | - | not measured |',
  );
  if (sync) {
    const overhead = median(sync.cell.runs.map((run) => run.overheadPct ?? Number.NaN));
    const spent = median(sync.cell.runs.map(checkpointMs));
    const reworkMs = Math.max(...sync.cell.runs.map((run) => run.interval?.ms ?? Number.NaN));
    lines.push(
      `| (a) default policy: checkpoint time ≤ 1 % of the run, rework bound ≤ 5 s | ${fmtMs(spent)} = ${pct(overhead)} of the run (${pct((100 * spent) / sync.base)} of the plain loop's time); interval (work at risk) ≤ ${fmtMs(reworkMs)} | ${mark(overhead <= 1 && reworkMs <= 5000)} |`,
    );
  }
  const shares: [string, Backend, number][] = [
    ['SQLite', 'sqlite', 0.9],
    ['PostgreSQL', 'postgres', 0.8],
    ['MySQL', 'mysql', 0.8],
  ];
  for (const [label, backend, target] of shares) {
    const writes = ratio('c', 'ckpt-auto', 'batched', backend);
    lines.push(
      writes
        ? `| (c) ${label}: exactly-once writes (\`ctx.tx.insert\`, ${c.toLocaleString('en-US')} records) ≥ ${100 * target} % of plain 500-row batched INSERTs | ${pct((100 * writes.base) / writes.ours)} of their throughput (${fmtMs(writes.ours)} against ${fmtMs(writes.base)}) | ${mark(writes.base / writes.ours >= target)} |`
        : `| (c) ${label}: exactly-once writes ≥ ${100 * target} % of plain batched INSERTs | not measured${backend === 'mysql' && results.mysql !== undefined ? ` (${results.mysql})` : ''} | not measured |`,
    );
  }
  const million = recordsOf(results, 'c1m');
  for (const [label, backend] of shares) {
    const writes = ratio('c1m', 'ckpt-auto', 'batched', backend);
    lines.push(
      writes
        ? `| (c) ${label}: exactly-once writes (\`ctx.tx.insert\` from an async process, ${million.toLocaleString('en-US')} records) ≥ 90 % of plain 500-row batched INSERTs | ${pct((100 * writes.base) / writes.ours)} of their throughput (${fmtMs(writes.ours)} against ${fmtMs(writes.base)}) | ${mark(writes.base / writes.ours >= 0.9)} |`
        : `| (c) ${label}: exactly-once writes at 1,000,000 rows ≥ 90 % of plain batched INSERTs | - | not measured |`,
    );
  }
  for (const [concurrency, label, backend, target] of effectTargets) {
    const ours = find(results, 'e', `job-c${concurrency}`, backend);
    const hand = find(results, 'e', `hand-c${concurrency}`, 'sqlite');
    const share = ours && hand ? median(hand.runs.map((run) => run.ms)) / median(ours.runs.map((run) => run.ms)) : Number.NaN;
    lines.push(
      ours && hand
        ? `| (e) ${label}, concurrency ${concurrency}: ≥ ${100 * target} % of the hand-written loop's throughput (${ours.records.toLocaleString('en-US')} records, two 10 ms effects each) | ${pct(100 * share)} (${fmtMs(median(ours.runs.map((run) => run.ms)))} against ${fmtMs(median(hand.runs.map((run) => run.ms)))}) | ${mark(share >= target)} |`
        : `| (e) ${label}, concurrency ${concurrency}: ≥ ${100 * target} % of the hand-written loop | - | not measured |`,
    );
  }
  const dbosTx = find(results, 'c', 'dbos-tx', 'postgres');
  const autoPg = find(results, 'c', 'ckpt-auto', 'postgres');
  if (dbosTx && autoPg) {
    const speedup = perRun(dbosTx, c) / perRun(autoPg, c);
    lines.push(
      `| (c) ≥ 100× DBOS one transaction per record | ${fmtRatio(speedup)} faster, checkpointed 'auto' on the same PostgreSQL | ${mark(speedup >= 100)} |`,
    );
  } else lines.push('| (c) ≥ 100× DBOS one transaction per record | - | not measured |');
  lines.push(
    results.rss.records > 0
      ? `| peak RSS of a ${results.rss.records.toLocaleString('en-US')}-record range job through \`ckpt run\`, no flags, ≤ 150 MB | ${results.rss.maxRssMb.toFixed(0)} MB | ${mark(results.rss.records >= 10_000_000 ? results.rss.maxRssMb <= 150 : undefined)} |`
      : '| peak RSS of a 10,000,000-record range job through `ckpt run`, no flags, ≤ 150 MB | - | not measured |',
  );
  const ckptResume = results.resume.filter((row) => row.system.startsWith('checkpointed'));
  const most = Math.max(...ckptResume.map((row) => row.done));
  const after = ckptResume.filter((row) => row.done === most);
  if (after.length > 0) {
    const fromOpen = median(after.map((row) => row.fromOpenMs ?? Number.NaN));
    const fromStart = median(after.map((row) => row.ms));
    const cpu = median(after.map((row) => row.fromOpenCpuMs ?? Number.NaN));
    lines.push(
      `| resume ≤ 50 ms from store open to first record after ${most.toLocaleString('en-US')} done | ${fmtMs(fromOpen)}, of which ${fmtMs(cpu)} CPU time (process start → first record: ${fmtMs(fromStart)}) | ${mark(most >= 1_000_000 ? fromOpen <= 50 : undefined)} |`,
    );
  }
  return lines;
}

/** (e)'s targets: concurrency, store, share of the hand-written loop's throughput. */
const effectTargets: [number, string, Backend, number][] = [
  [32, 'SQLite', 'sqlite', 0.85],
  [32, 'PostgreSQL', 'postgres', 0.85],
  [32, 'MySQL', 'mysql', 0.85],
  [1, 'SQLite', 'sqlite', 0.85],
  [1, 'PostgreSQL', 'postgres', 0.8],
  [1, 'MySQL', 'mysql', 0.8],
];

/** (e): each variant at its own records and concurrency, as a share of the hand-written loop's throughput at the same concurrency. */
function effectTable(results: BenchResults): string[] {
  const cells = results.cells.filter((cell) => cell.workload === 'e');
  if (cells.length === 0) return [];
  const lines = [
    `### ${workloadNames.e}`,
    '',
    '| variant | store | in flight | records | median | range | throughput, share of the hand-written loop | records/s | extra run time per effect |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const cell of cells) {
    const name = variantNames[cell.variant] ?? cell.variant;
    const store = cell.variant.startsWith('hand-') ? '-' : backendNames[cell.backend];
    const concurrency = effectConcurrency(cell.variant);
    if (cell.unavailable || cell.runs.length === 0) {
      lines.push(
        `| ${name} | ${store} | ${concurrency} | ${cell.records.toLocaleString('en-US')} | ${cell.unavailable ? cell.unavailable.replace(/:.*$/, '') : 'no run'} | | | | |`,
      );
      continue;
    }
    const times = cell.runs.map((run) => run.ms);
    const ms = median(times);
    const baseline = baselineOf(results.cells, cell);
    const baseMs = baseline && baseline.runs.length > 0 ? median(baseline.runs.map((run) => run.ms)) : Number.NaN;
    // The run's time beyond the hand-written loop's, per effect (two a record): what the journal
    // adds to the run for each, however many run at once.
    const perEffect = cell.variant.startsWith('hand-') ? '-' : `${((ms - baseMs) / (2 * cell.records)).toFixed(2)} ms`;
    lines.push(
      `| ${name} | ${store} | ${concurrency} | ${cell.records.toLocaleString('en-US')} | ${fmtMs(ms)} | ${fmtMs(Math.min(...times))}–${fmtMs(Math.max(...times))} | ${pct((100 * baseMs) / ms)} | ${Math.round((1000 * cell.records) / ms).toLocaleString('en-US')} | ${perEffect} |`,
    );
  }
  return lines;
}

/** (e)'s loop time per record: its two 10 ms calls. */
const effectLoopMs = 20;
/** The share of the loop's throughput (e) can reach at most when each of a record's two intents waits `waitMs`. */
const effectCeilingAt = (waitMs: number) => effectLoopMs / (effectLoopMs + 2 * waitMs);
/** The wait per intent at which (e) reaches `share` of the hand loop. */
const waitFor = (share: number) => ((1 / share - 1) * effectLoopMs) / 2;

/**
 * What bounds (e) under the current design: every record waits for two intents, each for the
 * group commit in flight and then its own. The commit floor (the smallest durable commit the
 * store makes) against the batches the journal made in the same run, and the share of the hand
 * loop those waits leave at most.
 */
function effectCeiling(results: BenchResults): string[] {
  const floors = results.commitFloor ?? [];
  const jobs = results.cells.filter((cell) => cell.workload === 'e' && cell.variant.startsWith('job-') && cell.runs.some((run) => run.journal));
  if (floors.length === 0 && jobs.length === 0) return [];
  const fmt = (ms: number) => (Number.isFinite(ms) ? `${ms.toFixed(2)} ms` : '-');
  const share = (value: number) => (Number.isFinite(value) ? `${(100 * value).toFixed(0)} %` : '-');
  const lines = [
    "### (e)'s journal waits and the ceiling they set",
    '',
    `A record's loop time is ${effectLoopMs} ms (two 10 ms calls), and it waits for each of its two intents to be durable (the group commit in flight, then its own), ` +
      `so (e) reaches at most ${effectLoopMs} / (${effectLoopMs} + 2 × the wait per intent) of the hand loop's throughput at any concurrency (records in flight over their mean time). ` +
      `85 % needs a wait per intent ≤ ${waitFor(0.85).toFixed(2)} ms, i.e. B ≤ ${((2 / 3) * waitFor(0.85)).toFixed(2)} ms if the wait is 1.5 × B; 80 %: ≤ ${waitFor(0.8).toFixed(2)} ms. ` +
      'B is one batch end to end as the queue waits for it (one `store.journal` call, timed in the runs above; on PostgreSQL and MySQL it includes the wait for the event loop to take the answer while records run); the wait per intent runs from a claim entering the queue to its batch being durable. ' +
      "Each cell is the median over the rounds of the run's own figure; the ceilings use the mean wait (throughput follows the mean).",
    '',
  ];
  if (floors.length > 0) {
    lines.push(
      '**Commit floor**, the smallest durable commit the journal could ever make on each store, measured in the same run, one at a time: ' +
        floors
          .map(
            (floor) =>
              `${backendNames[floor.backend]} median ${fmt(floor.median)}, p90 ${fmt(floor.p90)} (${floor.n} commits over ${floor.roundMedianMs.length} rounds, each round's after ${floor.warmup} unmeasured; the rounds' medians ${floor.roundMedianMs.map((ms) => ms.toFixed(2)).join(', ')} ms; ${floor.setting})`,
          )
          .join('; ') +
        '. SQLite: BEGIN IMMEDIATE, a one-row INSERT and COMMIT on a file of its own in the stores’ directory, as the side file writes a batch; PostgreSQL and MySQL: a one-row autocommit INSERT on a table of its own, through the store’s driver, on the same server as the rows above.',
      '',
    );
  }
  lines.push(
    '| store | in flight | commit floor, median (p90) | B, median (p90) | B, mean | writes a batch, median (p90) | wait per intent, mean (median, p90) | ceiling: measured wait | ceiling: wait = 1.5 × B | ceiling if B were the floor (1.5 × floor) | measured share |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const cell of jobs) {
    const timings = cell.runs.flatMap((run) => (run.journal ? [run.journal] : []));
    const of = (pick: (timing: NonNullable<VariantResult['journal']>) => number) => median(timings.map(pick));
    const floor = floors.find((one) => one.backend === cell.backend);
    const batchMean = of((timing) => timing.batchMs.mean);
    const waitMean = of((timing) => timing.intentWaitMs.mean);
    const hand = baselineOf(results.cells, cell);
    const measured = hand && hand.runs.length > 0 ? median(hand.runs.map((run) => run.ms)) / median(cell.runs.map((run) => run.ms)) : Number.NaN;
    lines.push(
      `| ${backendNames[cell.backend]} | ${effectConcurrency(cell.variant)} | ${floor ? `${fmt(floor.median)} (${fmt(floor.p90)})` : '-'} | ${fmt(of((timing) => timing.batchMs.median))} (${fmt(of((timing) => timing.batchMs.p90))}) | ${fmt(batchMean)} | ` +
        `${of((timing) => timing.batchSize.median)} (${of((timing) => timing.batchSize.p90)}) | ${fmt(waitMean)} (${fmt(of((timing) => timing.intentWaitMs.median))}, ${fmt(of((timing) => timing.intentWaitMs.p90))}) | ` +
        `${share(effectCeilingAt(waitMean))} | ${share(effectCeilingAt(1.5 * batchMean))} | ${floor ? share(effectCeilingAt(1.5 * floor.median)) : '-'} | ${share(measured)} |`,
    );
  }
  return [...lines, ''];
}

function resumeTable(results: BenchResults): string[] {
  const lines = [
    '## Resume latency (process start → first record processed)',
    '',
    '| system | done before the crash | process start → first record (median) | store open → first record (median) | CPU time in it | runs |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const keys = [...new Set(results.resume.map((row) => `${row.system}|${row.done}`))];
  for (const key of keys) {
    const [system, done] = key.split('|') as [string, string];
    const rows = results.resume.filter((row) => row.system === system && row.done === Number(done));
    lines.push(
      `| ${system} | ${Number(done).toLocaleString('en-US')} ${system.startsWith('DBOS') ? 'steps' : 'records'} | ${fmtMs(median(rows.map((row) => row.ms)))} | ${fmtMs(median(rows.map((row) => row.fromOpenMs ?? Number.NaN)))} | ${fmtMs(median(rows.map((row) => row.fromOpenCpuMs ?? Number.NaN)))} | ${rows.length} |`,
    );
  }
  return lines;
}

/** Each reason a cell has no number, once. */
function unavailableNotes(results: BenchResults): string[] {
  const reasons = [...new Set(results.cells.flatMap((cell) => (cell.unavailable ? [cell.unavailable] : [])))];
  return reasons.length === 0 ? [] : [...reasons.map((reason) => `Cells marked "not available yet": ${reason.replace(/^not available yet: /, '')}.`), ''];
}

/** The hand-written reading of an earlier results.md (its "## Reading" section), kept when the tables are written again. */
function readingOf(markdown: string | undefined): string[] {
  if (markdown === undefined) return [];
  const start = markdown.indexOf('\n## Reading');
  if (start < 0) return [];
  const end = markdown.indexOf('\n## ', start + 1);
  return [markdown.slice(start + 1, end < 0 ? undefined : end).trimEnd(), ''];
}

const partNames: Record<string, string> = { a: '(a)', b: '(b)', c: '(c)', c1m: '(c) at 1,000,000 rows', e: '(e)', resume: 'resume latency', rss: 'memory' };

/** `previous`: the results.md being replaced, whose hand-written reading is kept. */
export function renderResults(results: BenchResults, previous?: string): string {
  const { machine } = results;
  const load = (values: number[]) => values.map((value) => value.toFixed(2)).join(' / ');
  const remeasured = (results.remeasured ?? []).flatMap((entry) => [
    `Measured again ${entry.date.slice(0, 16).replace('T', ' ')} UTC by \`BENCH_ONLY=${(entry.only ?? entry.parts).join(',')} npm run bench\` (${entry.rounds} rounds), the figures shown of ${entry.parts.map((part) => partNames[part] ?? part).join(', ')}. ` +
      `Load average ${load(entry.machine.loadBefore)} before and ${load(entry.machine.loadAfter)} after; that run took ${entry.machine.minutes.toFixed(1)} min. These parts' tables and targets come from that run, their ratios within it.`,
    '',
  ]);
  return [
    '# Benchmark results',
    '',
    `Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC by \`npm run bench\`${results.quick ? ' in QUICK mode (fewer records: not the published numbers)' : ''}. ` +
      `${results.rounds} rounds; every table's variants alternated within each round, one fresh process per measurement; medians shown.`,
    '',
    `Machine: ${machine.cpus} × ${machine.model}, Node ${machine.node}. Load average (1/5/15 min) ${load(machine.loadBefore)} before and ${load(machine.loadAfter)} after; ` +
      `the run took ${machine.minutes.toFixed(1)} min. This machine was shared with other work while measuring, so compare figures within a table (the ratios), not across runs.`,
    '',
    `PostgreSQL: ${results.postgres}. Variants that commit once per record (seed and checkpointed every 1, DBOS) run ${results.scaledRecords.toLocaleString('en-US')} records, ` +
      `since 100,000 such commits take minutes per round; their times are scaled to the table's records and marked "scaled". Workload (a) runs ${recordsOf(results, 'a').toLocaleString('en-US')} records, (b) and (c) ${results.records.toLocaleString('en-US')}.`,
    '',
    ...remeasured,
    ...unavailableNotes(results),
    ...readingOf(previous),
    ...targets(results),
    '',
    '## Throughput',
    '',
    ...(['a', 'b', 'c', 'c1m'] as Workload[]).flatMap((workload) =>
      results.cells.some((cell) => cell.workload === workload) ? [...table(results, workload), ''] : [],
    ),
    ...effectTable(results),
    '',
    ...effectCeiling(results),
    ...(results.resume.length > 0 ? [...resumeTable(results), ''] : []),
    ...(results.rss.records > 0
      ? [
          '## Memory',
          '',
          `A ${results.rss.records.toLocaleString('en-US')}-record \`range\` job (a sum per record, so the figure is the runner's own footprint; default policy, SQLite) run by \`ckpt run\` with no flags: peak RSS ${results.rss.maxRssMb.toFixed(0)} MB, ${fmtMs(results.rss.ms)} from process start to exit, ${results.rss.checkpoints} checkpoints (${results.rss.policy}).`,
          '',
        ]
      : []),
    '![time per variant, relative to the baseline](results.png)',
    '',
  ].join('\n');
}
