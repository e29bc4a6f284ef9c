// Job instances: same params resume, other params are another instance, a completed instance
// does not run again unless asked, and a live holder keeps a second process out.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

interface JsonLine {
  type: string;
  data?: { processed?: number; position?: unknown };
  records?: number;
  outcome?: string;
  generation?: number;
}
const events = (stdout: string): JsonLine[] =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as JsonLine);
const summaryOf = (stdout: string) => events(stdout).find((event) => event.type === 'summary');

function setup(records = 5000) {
  const dir = tempDir('ckpt-life-');
  const store = `sqlite:${join(dir, 'store.db')}`;
  const env = { CKPT_TEST_RECORDS: String(records), CKPT_TEST_SPIN_US: '200' };
  const run = (...extra: string[]) => runCli(['run', fixture('count-job.ts'), '--store', store, ...extra], { env });
  const start = (...extra: string[]) => spawnCli(['run', fixture('count-job.ts'), '--store', store, ...extra], { env });
  return { store, env, run, start };
}

async function interruptMidway(start: () => ReturnType<typeof spawnCli>): Promise<void> {
  const running = start();
  await waitForOutput(running.child, (stdout) => stdout.includes('"checkpoint"'));
  running.child.kill('SIGTERM');
  assert.equal((await running.done).code, 3);
}

test('the same params resume; other params are another instance', { timeout: 60_000 }, async () => {
  const { run, start } = setup();
  await interruptMidway(() => start('--param', 'tag=a', '--every', '100'));
  const resumed = await run('--param', 'tag=a');
  assert.equal(resumed.code, 0, resumed.stderr);
  const resume = events(resumed.stdout).find((event) => event.type === 'run:resume');
  assert.ok(resume, 'the second run resumes');
  assert.ok((resume.data?.processed ?? 0) > 0);
  assert.ok((summaryOf(resumed.stdout)?.records ?? 0) < 5000, 'and does not redo the records already done');

  const other = await run('--param', 'tag=b');
  assert.equal(other.code, 0, other.stderr);
  assert.ok(
    events(other.stdout).some((event) => event.type === 'run:start'),
    'other params start from the beginning',
  );
  assert.equal(summaryOf(other.stdout)?.records, 5000);
});

test('a completed instance exits 0 without processing; --rerun and reset start over', { timeout: 60_000 }, async () => {
  const { store, env, run } = setup(2000);
  assert.equal((await run()).code, 0);

  const again = await run();
  assert.equal(again.code, 0);
  assert.match(again.stderr, /already complete/);
  assert.equal(summaryOf(again.stdout)?.records, 0);
  assert.equal(summaryOf(again.stdout)?.outcome, 'already-complete');

  const rerun = await run('--rerun');
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.equal(summaryOf(rerun.stdout)?.records, 2000);
  assert.equal(summaryOf(rerun.stdout)?.generation, 2);

  const reset = await runCli(['reset', 'count', '--store', store], { env });
  assert.equal(reset.code, 0, reset.stderr);
  assert.match(reset.stdout, /generation 3 starts from the beginning/);
  const afterReset = await run();
  assert.equal(summaryOf(afterReset.stdout)?.records, 2000);
  assert.equal(summaryOf(afterReset.stdout)?.generation, 3);

  // History of every generation stays.
  const runs = await runCli(['runs', 'count', '--store', store, '--json']);
  const rows = JSON.parse(runs.stdout) as { generation: number; outcome: string }[];
  assert.deepEqual(rows.map((row) => row.generation).sort(), [1, 2, 3]);
});

test('a live holder makes a second run exit 4 and names the holder', { timeout: 60_000 }, async () => {
  const { run, start } = setup(100_000);
  const holder = start();
  await waitForOutput(holder.child, (stdout) => stdout.includes('"run:start"'));
  const second = await run();
  assert.equal(second.code, 4, second.stderr);
  assert.match(second.stderr, new RegExp(`held by live worker ${hostname()}:${holder.child.pid}\\b`));
  assert.equal(second.stderr.trimEnd().split('\n').length, 1);
  holder.child.kill('SIGTERM');
  assert.equal((await holder.done).code, 3);
  // Once it has stopped, the instance resumes in another process.
  await sleep(10);
  const third = start();
  await waitForOutput(third.child, (stdout) => stdout.includes('"run:resume"'));
  third.child.kill('SIGKILL');
  await third.done;
});

test('--wait: a spare worker waits for the holder instead of exiting 4, then takes over', { timeout: 60_000 }, async () => {
  const { start } = setup(100_000);
  const holder = start('--every', '500');
  await waitForOutput(holder.child, (stdout) => stdout.includes('"checkpoint"'));
  const spare = start('--wait');
  await sleep(500);
  assert.equal(spare.child.exitCode, null, 'the spare is still waiting');
  holder.child.kill('SIGTERM');
  assert.equal((await holder.done).code, 3);
  await waitForOutput(spare.child, (stdout) => stdout.includes('"run:resume"'));
  spare.child.kill('SIGTERM');
  const ended = await spare.done;
  assert.equal(ended.code, 3, ended.stderr);
});
