// Turns the measurements of one bench run into bench/results.md: medians, ratios and targets.
import { type VariantResult, variantNames } from './variants.ts';
import { type Workload, workloadNames } from './workloads.ts';

export interface Cell {
  workload: Workload;
  variant: string;
  backend: 'sqlite' | 'postgres';
  records: number;
  runs: VariantResult[];
  unavailable?: string;
}

export interface BenchResults {
  date: string;
  quick: boolean;
  rounds: number;
  records: number;
  /** Records of the variants that commit per record (every: 1, DBOS); their times are scaled. */
  scaledRecords: number;
  machine: { cpus: number; model: string; node: string; loadBefore: number[]; loadAfter: number[]; minutes: number };
  postgres: string;
  cells: Cell[];
  resume: { system: string; done: number; ms: number }[];
  rss: { records: number; ms: number; maxRssMb: number; checkpoints: number; policy: string };
}

export const median = (values: number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Median time for 100,000 records (variants run on fewer are scaled, and say so). */
export const perRun = (cell: Cell, records: number): number => (median(cell.runs.map((run) => run.ms)) * records) / cell.records;

const fmtMs = (ms: number) =>
  !Number.isFinite(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
const fmtRatio = (ratio: number) => (!Number.isFinite(ratio) ? '-' : ratio >= 10 ? `${ratio.toFixed(0)}×` : `${ratio.toFixed(2)}×`);
const pct = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)} %` : '-');

export function baselineOf(cells: Cell[], cell: Cell): Cell | undefined {
  const variant = cell.workload === 'c' ? 'batched' : 'plain';
  const backend = cell.workload === 'c' && cell.backend === 'postgres' ? 'postgres' : 'sqlite';
  return cells.find((other) => other.workload === cell.workload && other.variant === variant && other.backend === backend);
}

/** Checkpoint time of a run in ms, from the share the run summary reports. */
const checkpointMs = (run: VariantResult) => ((run.overheadPct ?? Number.NaN) * run.ms) / 100;

function table(results: BenchResults, workload: Workload): string[] {
  const cells = results.cells.filter((cell) => cell.workload === workload);
  const base = workload === 'c' ? 'batched inserts (same backend)' : 'plain loop';
  const lines = [
    `### ${workloadNames[workload]}`,
    '',
    `| variant | store | median for ${results.records.toLocaleString('en-US')} records | range | × ${base} | records/s | checkpoints | checkpoint time | interval chosen |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const cell of cells) {
    const name = variantNames[cell.variant] ?? cell.variant;
    const store = cell.variant.startsWith('seed')
      ? 'SQLite (one-row table)'
      : cell.workload !== 'c' && cell.variant === 'plain'
        ? '-'
        : cell.backend === 'sqlite'
          ? 'SQLite'
          : 'PostgreSQL';
    if (cell.unavailable || cell.runs.length === 0) {
      lines.push(`| ${name} | ${store} | ${cell.unavailable ? cell.unavailable.replace(/:.*$/, '') : 'no run'} | | | | | | |`);
      continue;
    }
    const ms = perRun(cell, results.records);
    const times = cell.runs.map((run) => (run.ms * results.records) / cell.records);
    const baseline = baselineOf(results.cells, cell);
    const baseMs = baseline && baseline.runs.length > 0 ? perRun(baseline, results.records) : Number.NaN;
    const last = cell.runs.at(-1)!;
    const scaled = cell.records !== results.records ? ` (run over ${cell.records.toLocaleString('en-US')}, scaled)` : '';
    const interval =
      last.interval && cell.variant === 'ckpt-auto'
        ? `${last.interval.records === null ? '' : `${last.interval.records.toLocaleString('en-US')} rec / `}${fmtMs(last.interval.ms ?? Number.NaN)} (${last.interval.reason})`
        : '';
    lines.push(
      `| ${name}${scaled} | ${store} | ${fmtMs(ms)} | ${fmtMs(Math.min(...times))}–${fmtMs(Math.max(...times))} | ${fmtRatio(ms / baseMs)} | ${Math.round((1000 * results.records) / ms).toLocaleString('en-US')} | ${last.checkpoints ?? '-'} | ${last.overheadPct === undefined ? '-' : pct(median(cell.runs.map((run) => run.overheadPct ?? Number.NaN)))} | ${interval} |`,
    );
  }
  return lines;
}

function find(results: BenchResults, workload: Workload, variant: string, backend: 'sqlite' | 'postgres'): Cell | undefined {
  const cell = results.cells.find((one) => one.workload === workload && one.variant === variant && one.backend === backend);
  return cell && cell.runs.length > 0 ? cell : undefined;
}

function targets(results: BenchResults): string[] {
  const lines = ['## Targets', '', '| target | measured | met? |', '| --- | --- | --- |'];
  const mark = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? 'yes' : '**missed**');
  const plainA = find(results, 'a', 'plain', 'sqlite');
  const autoA = find(results, 'a', 'ckpt-auto', 'sqlite');
  if (plainA && autoA) {
    const plainMs = perRun(plainA, results.records);
    const spent = median(autoA.runs.map(checkpointMs));
    const reworkMs = Math.max(...autoA.runs.map((run) => run.interval?.ms ?? Number.NaN));
    const total = perRun(autoA, results.records) / plainMs;
    lines.push(
      `| (a) auto: checkpoint time ≤ 1 % of the plain loop, rework bound ≤ 5 s | checkpoint time ${fmtMs(spent)} = ${pct((100 * spent) / plainMs)} of the plain loop's ${fmtMs(plainMs)}; interval (work at risk) ≤ ${fmtMs(reworkMs)}. Whole run ${fmtRatio(total)} the plain loop: the rest is the runner's per-record cost, not checkpoints | ${mark(spent / plainMs <= 0.01 && reworkMs <= 5000)} |`,
    );
  } else lines.push('| (a) auto overhead ≤ 1 % | - | not measured |');
  for (const backend of ['sqlite', 'postgres'] as const) {
    const batched = find(results, 'c', 'batched', backend);
    const auto = find(results, 'c', 'ckpt-auto', backend);
    const label = backend === 'sqlite' ? 'SQLite' : 'PostgreSQL';
    if (batched && auto) {
      const share = perRun(batched, results.records) / perRun(auto, results.records);
      lines.push(`| (c) ${label}: exactly-once writes ≥ 90 % of plain batched inserts | ${pct(100 * share)} of their throughput | ${mark(share >= 0.9)} |`);
    } else lines.push(`| (c) ${label}: exactly-once writes ≥ 90 % of plain batched inserts | checkpointed on ${label} not measured | not measured |`);
  }
  const dbosTx = find(results, 'c', 'dbos-tx', 'postgres');
  const autoPg = find(results, 'c', 'ckpt-auto', 'postgres');
  const autoSqlite = find(results, 'c', 'ckpt-auto', 'sqlite');
  const ours = autoPg ?? autoSqlite;
  if (dbosTx && ours) {
    const speedup = perRun(dbosTx, results.records) / perRun(ours, results.records);
    const which = autoPg ? 'on the same PostgreSQL' : 'on SQLite (checkpointed on PostgreSQL not available yet, so not like for like)';
    lines.push(`| (c) ≥ 50× DBOS one transaction per record | ${fmtRatio(speedup)} faster, checkpointed 'auto' ${which} | ${mark(speedup >= 50)} |`);
  } else lines.push('| (c) ≥ 50× DBOS one transaction per record | - | not measured |');
  const ckptResume = results.resume.filter((row) => row.system.startsWith('checkpointed'));
  const dones = [...new Set(ckptResume.map((row) => row.done))].sort((a, b) => a - b);
  if (dones.length >= 2) {
    const first = median(ckptResume.filter((row) => row.done === dones[0]).map((row) => row.ms));
    const last = median(ckptResume.filter((row) => row.done === dones.at(-1)).map((row) => row.ms));
    lines.push(
      `| resume latency does not grow with records done | ${fmtMs(first)} after ${dones[0]!.toLocaleString('en-US')}, ${fmtMs(last)} after ${dones.at(-1)!.toLocaleString('en-US')} | ${mark(last <= first * 1.25 + 20)} |`,
    );
  }
  lines.push(
    `| peak RSS of a ${results.rss.records.toLocaleString('en-US')}-record range job < 150 MB | ${results.rss.maxRssMb.toFixed(0)} MB | ${mark(results.rss.records >= 10_000_000 ? results.rss.maxRssMb < 150 : undefined)} |`,
  );
  return lines;
}

function resumeTable(results: BenchResults): string[] {
  const lines = [
    '## Resume latency (process start → first record processed)',
    '',
    '| system | done before the crash | median | runs |',
    '| --- | ---: | ---: | ---: |',
  ];
  const keys = [...new Set(results.resume.map((row) => `${row.system}|${row.done}`))];
  for (const key of keys) {
    const [system, done] = key.split('|') as [string, string];
    const rows = results.resume.filter((row) => row.system === system && row.done === Number(done));
    lines.push(
      `| ${system} | ${Number(done).toLocaleString('en-US')} ${system.startsWith('DBOS') ? 'steps' : 'records'} | ${fmtMs(median(rows.map((row) => row.ms)))} | ${rows.length} |`,
    );
  }
  return lines;
}

/** Each reason a cell has no number, once. */
function unavailableNotes(results: BenchResults): string[] {
  const reasons = [...new Set(results.cells.flatMap((cell) => (cell.unavailable ? [cell.unavailable] : [])))];
  return reasons.length === 0 ? [] : [...reasons.map((reason) => `Cells marked "not available yet": ${reason.replace(/^not available yet: /, '')}.`), ''];
}

export function renderResults(results: BenchResults): string {
  const { machine } = results;
  const load = (values: number[]) => values.map((value) => value.toFixed(2)).join(' / ');
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
      `since 100,000 such commits take minutes per round; their times are scaled to ${results.records.toLocaleString('en-US')} and marked "scaled".`,
    '',
    ...unavailableNotes(results),
    ...targets(results),
    '',
    '## Throughput',
    '',
    ...(['a', 'b', 'c'] as Workload[]).flatMap((workload) => [...table(results, workload), '']),
    ...resumeTable(results),
    '',
    '## Memory',
    '',
    `A ${results.rss.records.toLocaleString('en-US')}-record \`range\` job (a sum per record, so the figure is the runner's own footprint; default policy, SQLite): peak RSS ${results.rss.maxRssMb.toFixed(0)} MB, ${fmtMs(results.rss.ms)}, ${results.rss.checkpoints} checkpoints (${results.rss.policy}).`,
    '',
    '![time per variant, relative to the baseline](results.png)',
    '',
  ].join('\n');
}
