// A rework bound never exceeds what the shard holds: a crashed run's progress-mark ceiling may lie
// past the shard's end (a mark step of 1,000 records past a checkpoint at 1,000 of 1,683), but
// once the shard completes, its size bounds how far any earlier run got: the resume's "redid at
// most N" and `ckpt runs` (text and JSON) say at most 683, not 1,336, and the crashed run at most
// 1,683 records, not 2,336.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const parse = (text: string) => Number(text.replaceAll(',', ''));

test('the rework bound of a crash is clamped to the shard size once the shard completes', { timeout: 60_000 }, async () => {
  const store = `sqlite:${join(tempDir('ckpt-rework-bound-'), 'store.db')}`;
  const args = ['run', fixture('rework-bound-job.ts'), '--store', store, '--every', '1000', '--quiet'];
  const crashed = await runCli(args, { env: { CRASH_AT: '1500' } });
  assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
  const resumed = await runCli(args.filter((arg) => arg !== '--quiet'));
  assert.equal(resumed.code, 0, resumed.stderr);
  const redid = /redid at most ([\d,]+) records/.exec(resumed.stderr);
  assert.ok(redid, resumed.stderr);
  const bound = parse(redid[1] ?? '');
  assert.ok(bound >= 500 && bound <= 683, `redid at most ${bound}: the crash was at 1,500, the checkpoint at 1,000, the shard holds 1,683`);

  const listed = await runCli(['runs', 'rework-bound', '--store', store, '--json']);
  const runs = JSON.parse(listed.stdout) as { outcome: string; rework: number | null; redone?: { records: number } }[];
  const crash = runs.find((run) => run.outcome === 'crashed');
  const resume = runs.find((run) => run.outcome === 'completed');
  assert.ok((crash?.redone?.records ?? 0) <= 683, JSON.stringify(crash?.redone));
  assert.ok((resume?.rework ?? 0) <= 683, String(resume?.rework));

  const table = await runCli(['runs', 'rework-bound', '--store', store]);
  const crashLine = table.stdout.split('\n').find((line) => line.includes('crashed')) ?? '';
  const reached = /≤ ([\d,]+)/.exec(crashLine);
  assert.ok(reached === null || parse(reached[1] ?? '') <= 1683, crashLine);
  const resumeLine = table.stdout.split('\n').find((line) => line.includes('completed')) ?? '';
  const rework = /≤ ([\d,]+) \(/.exec(resumeLine);
  assert.ok(rework !== null && parse(rework[1] ?? '') <= 683, resumeLine);
});
