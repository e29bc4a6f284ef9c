// Adversarial: right after a SIGKILL, before any new run, the query and admin commands tell the
// truth: the killed run is `crashed`, not `running` held by a live worker, and `ckpt reset` /
// `ckpt dlq --retry` are not refused in the name of a process that no longer exists.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

test('after SIGKILL: status shows no holder, runs shows crashed, events log it once, reset and dlq --retry proceed', { timeout: 30_000 }, async () => {
  const dir = tempDir('ckpt-after-kill-');
  const store = `sqlite:${join(dir, 's.db')}`;
  const env = { CKPT_TEST_RECORDS: '200000', CKPT_TEST_SPIN_US: '50' };
  const run = spawnCli(['run', fixture('count-job.ts'), '--store', store, '--every', '100', '--lease-ms', '60000'], { env });
  await waitForOutput(run.child, (stdout) => stdout.includes('"type":"checkpoint"'));
  run.child.kill('SIGKILL');
  await run.done;

  const status = await runCli(['status', '--store', store, '--json']);
  assert.equal(status.code, 0, status.stderr);
  const [instance] = JSON.parse(status.stdout) as { holders: unknown[]; shards: { running: number } }[];
  assert.deepEqual(instance?.holders, [], 'a dead process holds nothing');
  const table = await runCli(['status', '--store', store]);
  assert.match(table.stdout, /resumable/);
  assert.doesNotMatch(table.stdout, /running/);

  const runs = await runCli(['runs', 'count', '--store', store, '--json']);
  assert.deepEqual(
    (JSON.parse(runs.stdout) as { outcome: string }[]).map((row) => row.outcome),
    ['crashed'],
  );
  const events = await runCli(['events', 'count', '--store', store, '--json']);
  assert.equal((JSON.parse(events.stdout) as { type: string }[]).filter((event) => event.type === 'run:crashed').length, 1);

  const dlq = await runCli(['dlq', fixture('count-job.ts'), '--retry', '--store', store], { env });
  assert.equal(dlq.code, 0, dlq.stderr);
  const reset = await runCli(['reset', 'count', '--store', store]);
  assert.equal(reset.code, 0, reset.stderr);
  assert.match(reset.stdout, /generation 2 starts from the beginning/);

  // The history still has exactly one crash, logged once.
  const after = await runCli(['events', 'count', '--store', store, '--json']);
  assert.equal((JSON.parse(after.stdout) as { type: string }[]).filter((event) => event.type === 'run:crashed').length, 1);
});

test('--rerun right after a SIGKILL starts over instead of refusing in the dead process’s name', { timeout: 30_000 }, async () => {
  const dir = tempDir('ckpt-after-kill-');
  const store = `sqlite:${join(dir, 's.db')}`;
  const run = spawnCli(['run', fixture('count-job.ts'), '--store', store, '--every', '100', '--lease-ms', '60000'], {
    env: { CKPT_TEST_RECORDS: '200000', CKPT_TEST_SPIN_US: '50' },
  });
  await waitForOutput(run.child, (stdout) => stdout.includes('"type":"checkpoint"'));
  run.child.kill('SIGKILL');
  await run.done;
  const rerun = await runCli(['run', fixture('count-job.ts'), '--store', store, '--rerun', '--quiet'], { env: { CKPT_TEST_RECORDS: '1000' } });
  assert.equal(rerun.code, 0, rerun.stderr);
  const runs = await runCli(['runs', 'count', '--store', store, '--json']);
  assert.deepEqual(
    (JSON.parse(runs.stdout) as { outcome: string; generation: number }[]).map((row) => [row.generation, row.outcome]),
    [
      [2, 'completed'],
      [1, 'crashed'],
    ],
  );
});
