import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, it } from 'node:test';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'ckpt-auto-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const maxReworkMs = 300;
// A progress mark every 40 ms, so the mark a crash leaves behind is close to where the run died.
const args = [
  'bin/ckpt.js',
  'run',
  'test/fixtures/auto-rework-job.ts',
  '--store',
  `sqlite:${join(dir, 'ckpt.db')}`,
  '--lease-ms',
  '600',
  '--heartbeat-ms',
  '40',
];

type Line = { type: string; data?: { processed?: number; rework?: number }; [key: string]: unknown };

/** Start `ckpt run`, call `onLine` with each JSON line it prints (events, then the summary). */
function start(extra: string[], onLine: (line: Line, child: ChildProcess) => void): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [...args, ...extra], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  createInterface({ input: child.stdout! }).on('line', (text) => onLine(JSON.parse(text) as Line, child));
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  exit.then((code) => {
    if (code !== null && code !== 3) process.stderr.write(stderr);
  });
  return { child, exit };
}

it('with auto, the rework a SIGKILL costs is within maxReworkMs of work', { timeout: 60_000 }, async (t) => {
  // Run 1: checkpointing under auto with a 300 ms rework bound; killed without warning mid-interval.
  let checkpoints = 0;
  /** Records in the crashed run's last chunk: maxReworkMs of its work at its latest rate. */
  let lastChunk = 0;
  const first = start(['--max-rework-ms', String(maxReworkMs)], (line, child) => {
    if (line.type !== 'checkpoint') return;
    checkpoints++;
    lastChunk = Number((line.data as { records?: number } | undefined)?.records ?? 0);
    // Past the warm-up, at a point inside an interval that differs from run to run.
    if (checkpoints === 4) setTimeout(() => child.kill('SIGKILL'), 100 + Math.random() * (maxReworkMs - 120));
  });
  assert.equal(await first.exit, null, 'the first run was killed');

  // Run 2: resumes; once it is past the crashed run's mark, stop it gracefully to read its summary.
  let target = Number.POSITIVE_INFINITY;
  let summary: Line | undefined;
  const second = start(['--max-rework-ms', String(maxReworkMs)], (line, child) => {
    if (line.type === 'run:resume') target = (line.data?.processed ?? 0) + (line.data?.rework ?? 0);
    if (line.type === 'checkpoint' && (line.data?.processed ?? 0) > target) child.kill('SIGINT');
    if (line.type === 'summary') summary = line;
  });
  assert.equal(await second.exit, 3, 'the second run was interrupted with its checkpoint saved');
  assert.ok(summary, 'the second run printed its summary');
  const { rework, reworkMs, interval } = summary as unknown as { rework: number; reworkMs: number; interval: { ms: number; records: number } };
  t.diagnostic(
    `auto chose ${interval.records} records / ${interval.ms.toFixed(0)} ms; after the SIGKILL it reworked ${rework} records in ${reworkMs.toFixed(0)} ms (bound ${maxReworkMs} ms); the crashed run's last chunk ${lastChunk} records`,
  );
  assert.ok(interval.ms <= maxReworkMs, `interval ${interval.ms} ms within the bound`);
  // Rework is counted up to the crashed run's last progress mark, and timed while it is redone.
  assert.ok(rework > 0, 'the kill fell after a progress mark past the last checkpoint, so there was work to redo');
  // The work at risk: never more records than maxReworkMs of the crashed run's work, plus the one
  // progress-mark step by which the reported count (a ceiling) may exceed the truth. The interval
  // is timed, so its records are the run's rate times maxReworkMs: the interval auto reported
  // (from its moving average of the rate), or the last chunk the crashed run committed before the
  // kill (its latest rate), whichever is larger. The average alone lags a run that speeds up (the
  // JIT warming, a neighbour's load ending): at load ~3, 32,683 records redone against an average
  // of ~19,000 a chunk. The resumed run's own interval is no yardstick: on a loaded machine its
  // cold start measured a third of the crashed run's rate (4,791 vs 13,284).
  const runs = JSON.parse(
    execFileSync(process.execPath, ['bin/ckpt.js', 'runs', 'auto-rework', '--store', `sqlite:${join(dir, 'ckpt.db')}`, '--json'], {
      cwd: root,
      encoding: 'utf8',
    }),
  ) as { outcome: string; stats: { intervalRecords?: number }; redone?: { records: number; markStep: number } }[];
  const crashed = runs.find((run) => run.outcome === 'crashed');
  const held = Math.max(crashed?.stats.intervalRecords ?? 0, lastChunk);
  assert.ok(crashed?.redone, 'the crashed run says how much of its work was redone');
  assert.ok(
    rework <= held * 1.25 + crashed.redone.markStep,
    `reworked ${rework} records; the crashed run's interval held ${crashed.stats.intervalRecords}, its last chunk ${lastChunk}, a mark step ${crashed.redone.markStep}`,
  );
  // The redo's own time (in the diagnostic) is not asserted: it is the resumed process's speed, a
  // cold process on a machine running other tests, not the work the crash put at risk (seen: 21,916
  // records redone in 588 ms that took the warm crashed run under 300 ms; 17,187 in 762 ms at load
  // 4, fewer records than the crashed run's last 300 ms chunk of 26,710). The bound is checked
  // above in the crashed run's own terms: its records, at its rate.
  assert.ok(reworkMs > 0, 'the resumed run timed its redo');
});
