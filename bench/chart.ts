// The chart of results.png: each variant's median time relative to its table's baseline, on a
// log scale, grouped by workload.
import { Canvas, type Rgb } from './png.ts';
import { type BenchResults, baselineOf, perRun } from './report.ts';
import { variantNames } from './variants.ts';
import { type Workload, workloadNames, writesRows } from './workloads.ts';

const colors: Record<Workload, Rgb> = { a: [52, 101, 164], b: [78, 154, 6], c: [204, 0, 0], c1m: [164, 0, 0], e: [117, 80, 123] };
const ours: Rgb = [245, 121, 0];

export function drawChart(results: BenchResults): Buffer {
  const rows: { label: string; ratio: number; workload: Workload; ours: boolean }[] = [];
  for (const cell of results.cells) {
    const baseline = baselineOf(results.cells, cell);
    if (!baseline || cell.runs.length === 0 || baseline.runs.length === 0) continue;
    const store =
      cell.variant.startsWith('seed') || cell.variant.startsWith('hand-') || (!writesRows(cell.workload) && cell.variant.startsWith('plain'))
        ? ''
        : cell.backend === 'sqlite'
          ? ' SQLITE'
          : cell.backend === 'mysql'
            ? ' MYSQL'
            : ' PG';
    const label = `(${cell.workload === 'c1m' ? 'c 1M' : cell.workload}) ${(variantNames[cell.variant] ?? cell.variant).replace(', no checkpoint', '').replace('checkpointed ', 'ckpt ')}${store}`;
    rows.push({
      label,
      ratio: perRun(cell, results.records) / perRun(baseline, results.records),
      workload: cell.workload,
      ours: cell.variant === 'ckpt-auto' || cell.variant.startsWith('job-'),
    });
  }
  const rowHeight = 22;
  const left = 560;
  const right = 1180;
  const top = 90;
  const canvas = new Canvas(1280, top + rows.length * rowHeight + 60);
  canvas.text(20, 14, 'checkpointed bench: median time relative to the baseline (log scale)', [0, 0, 0], 2);
  canvas.text(
    20,
    40,
    `baseline: plain loop for (a) and (b), batched inserts on the same store for (c), the hand-written loop at the same concurrency for (e). ${results.rounds} rounds`,
    [80, 80, 80],
    1,
  );
  canvas.text(20, 56, `orange = checkpointed 'auto'. ${(['a', 'b', 'c'] as Workload[]).map((w) => workloadNames[w]).join('  ')}`, [80, 80, 80], 1);
  canvas.text(20, 70, `${workloadNames.c1m.replaceAll('`', '')}  ${workloadNames.e.replaceAll('`', '')}`, [80, 80, 80], 1);
  const maxRatio = Math.max(10, ...rows.map((row) => row.ratio));
  const decades = Math.ceil(Math.log10(maxRatio));
  const minLog = -0.3;
  const x = (ratio: number) => left + ((Math.log10(Math.max(ratio, 10 ** minLog)) - minLog) / (decades - minLog)) * (right - left);
  for (let decade = 0; decade <= decades; decade++) {
    const at = x(10 ** decade);
    canvas.rect(at, top - 8, 1, rows.length * rowHeight + 8, [200, 200, 200]);
    canvas.text(at - 8, top + rows.length * rowHeight + 8, `${10 ** decade}×`, [80, 80, 80], 2);
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    canvas.text(20, y + 4, row.label.slice(0, 44), [30, 30, 30], 2);
    canvas.rect(left, y + 3, Math.max(2, x(row.ratio) - left), rowHeight - 6, row.ours ? ours : colors[row.workload]);
    const value = row.ratio >= 10 ? `${row.ratio.toFixed(0)}×` : `${row.ratio.toFixed(2)}×`;
    canvas.text(Math.min(x(row.ratio) + 6, right + 10), y + 4, value, [0, 0, 0], 2);
  });
  return canvas.png();
}
