// `ckpt dlq <job-file> --retry` performs the letters' effects, so the job's guards apply to it as
// to a run: a letter's effects count against the job's `limits` (the retry holds where a run would
// have, and `ckpt approve` raises the limit), and those naming a `target` keep to its fleet rate.
// Before, a retry ran them unguarded: ten dead letters of a job limited to 3 disables made 10
// disables, no hold; of a directory limited to 4 calls a second, 10 calls in a few milliseconds.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';
import { sqlStores } from './helpers/sql-stores.ts';

const job = fixture('dlq-limited.ts');

function disables(log: string): number[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => Number(line.split(' ')[0]));
}

for (const sql of sqlStores) {
  test(`dlq --retry counts the letters' effects against the job's limit, and holds there (${sql.title})`, { skip: await sql.skip() }, async () => {
    const database = await sql.database();
    const dir = tempDir();
    const log = join(dir, 'effects.log');
    const store = ['--store', database.store('dlqguard')];
    const env = { CKPT_TEST_LOG: log };
    try {
      const failed = await runCli(['run', job, ...store, '--quiet'], { env: { ...env, DLQ_FAIL: '1' } });
      assert.equal(failed.code, 0, failed.stderr);
      assert.deepEqual(disables(log), [], 'no disable while the directory was down');

      const retried = await runCli(['dlq', job, '--retry', ...store], { env });
      assert.equal(retried.code, 1, retried.stdout + retried.stderr);
      assert.equal(disables(log).length, 3, `the limit is 3 disables: ${disables(log).join(',')}`);
      assert.match(retried.stdout + retried.stderr, /the limit on disable effects is reached \(3 of 3 started\)/);
      const status = await runCli(['status', ...store]);
      assert.match(status.stdout, /dlq-limited: held: the limit on disable effects is reached/);

      for (const by of ['ana', 'ben']) {
        const approved = await runCli(['approve', 'dlq-limited', '--raise', 'disable=+10', '--by', by, '--reason', 'reviewed', ...store]);
        assert.equal(approved.code, 0, approved.stderr);
      }
      const again = await runCli(['dlq', job, '--retry', ...store], { env });
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.deepEqual(
        disables(log).sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        'each account disabled once',
      );
    } finally {
      await database.drop();
    }
  });
}

for (const sql of sqlStores) {
  test(`dlq --retry keeps the letters' effects to the target's fleet rate (${sql.title})`, { skip: await sql.skip() }, async () => {
    const database = await sql.database();
    const dir = tempDir();
    const log = join(dir, 'effects.log');
    const store = ['--store', database.store('dlqrate')];
    const env = { CKPT_TEST_LOG: log, DLQ_MAX: '100', DLQ_RATE: '4' };
    try {
      const failed = await runCli(['run', job, ...store, '--quiet'], { env: { ...env, DLQ_FAIL: '1' } });
      assert.equal(failed.code, 0, failed.stderr);
      const retried = await runCli(['dlq', job, '--retry', ...store], { env });
      assert.equal(retried.code, 0, retried.stdout + retried.stderr);
      const starts = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((line) => Number(line.split(' ')[1]))
        .sort((a, b) => a - b);
      assert.equal(starts.length, 10);
      // No second holds more than the rate's 4 starts.
      for (const [index, start] of starts.entries()) {
        const within = starts.slice(index).filter((at) => at < start + 1000).length;
        assert.ok(within <= 4, `${within} calls within a second from ${start}: ${starts.map((at) => at - (starts[0] as number)).join(', ')} ms`);
      }
    } finally {
      await database.drop();
    }
  });
}

test("a hold a dlq --retry opens needs the job's approvals (two people), not one", async () => {
  const dir = tempDir();
  const log = join(dir, 'effects.log');
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const env = { CKPT_TEST_LOG: log, DLQ_POINT: '1' };
  const failed = await runCli(['run', job, ...store, '--quiet'], { env: { ...env, DLQ_FAIL: '1' } });
  assert.equal(failed.code, 0, failed.stderr);
  const retried = await runCli(['dlq', job, '--retry', ...store], { env });
  assert.equal(retried.code, 1, retried.stdout + retried.stderr);
  assert.match(retried.stdout + retried.stderr, /held at approval point revoke-phase; 2 approvals needed \(0 given\)/);
  const approve = (by: string) => runCli(['approve', 'dlq-limited', '--point', 'revoke-phase', '--by', by, '--reason', 'reviewed', ...store]);
  const one = await approve('ana');
  assert.equal(one.code, 0, one.stderr);
  assert.doesNotMatch(one.stdout, /released/, `one person released it: ${one.stdout}`);
  const still = await runCli(['dlq', job, '--retry', ...store], { env });
  assert.equal(disables(log).length, 0, `effects past the point after one approval: ${still.stdout}`);
  const two = await approve('ben');
  assert.match(two.stdout, /released point:revoke-phase/);
  const past = await runCli(['dlq', job, '--retry', ...store], { env });
  assert.equal(disables(log).length, 3, `past the point, up to the limit of 3: ${past.stdout}${past.stderr}`);
});
