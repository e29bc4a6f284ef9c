// The auto policy from the command line: its flags, its summary lines and its `ckpt runs` column.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const dir = tempDir('ckpt-auto-cli-');
after(() => rmSync(dir, { recursive: true, force: true }));
const store = `sqlite:${join(dir, 'ckpt.db')}`;
const env = { CKPT_TEST_RECORDS: '3000' };

test('--checkpoint auto overrides the job’s interval; the summary says what it chose and why', async () => {
  const result = await runCli(['run', fixture('count-job.ts'), '--store', store, '--checkpoint', 'auto', '--max-rework-ms', '2000'], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /checkpoints 1 written \(auto\), .* % of the run/);
  assert.match(
    result.stderr,
    /\n {2}interval {2}every 2\.0 s \(a first guess: no checkpoint timed yet, so one is assumed to take 1 ms; expecting a crash every 60 min \(no crash seen yet; one an hour is assumed until history says otherwise\)\)/,
  );
  const summary = JSON.parse(result.stdout.trimEnd().split('\n').at(-1) ?? '{}') as { interval: { ms: number; reason: string } };
  assert.equal(summary.interval.reason, 'warmup');
  assert.ok(summary.interval.ms <= 2000);

  const runs = await runCli(['runs', 'count', '--store', store]);
  assert.match(runs.stdout, /OVERHEAD\s+INTERVAL\n/);
  assert.match(runs.stdout, /completed .* %\s+2\.0 s\n/);
});

test('auto flags are refused next to a fixed interval, and out-of-range bounds are usage errors', async () => {
  const both = await runCli(['run', fixture('count-job.ts'), '--store', store, '--checkpoint', 'auto', '--every', '5'], { env });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^ckpt: .*cannot be used with/);
  const bound = await runCli(['run', fixture('count-job.ts'), '--store', store, '--max-overhead', '0'], { env });
  assert.equal(bound.code, 2);
  assert.match(bound.stderr, /--max-overhead must be a percentage in \(0, 100\]/);
  const policy = await runCli(['run', fixture('count-job.ts'), '--store', store, '--checkpoint', 'sometimes'], { env });
  assert.equal(policy.code, 2);
  assert.match(policy.stderr, /sometimes/);
});
