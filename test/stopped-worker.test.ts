// A worker SIGSTOPped past its lease is unresponsive, not crashed: `ckpt status` says so (and
// marks nothing), and the run's recorded end is what it did: completed when it is continued and
// finishes, lost when another worker took its expired lease meanwhile. Only a process that is
// gone is recorded crashed. Real child processes, real SIGSTOP/SIGCONT/SIGKILL, one SQLite file.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const env = { CKPT_TEST_RECORDS: '3000', CKPT_TEST_SPIN_US: '1000' };
const leaseFlags = ['--lease-ms', '500', '--heartbeat-ms', '100'];

async function startStopped(dir: string, json = true) {
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  // Without --json (stdout not a terminal) the events are JSON lines still, and the end in words is on stderr.
  const worker = spawnCli(['run', fixture('count-job.ts'), ...store, ...leaseFlags, ...(json ? ['--json'] : [])], { env });
  await waitForOutput(worker.child, (out) => out.includes('"type":"checkpoint"'));
  worker.child.kill('SIGSTOP');
  await sleep(1200); // past the 500 ms lease
  return { store, worker };
}

async function runsOf(store: string[]): Promise<{ id: number; outcome: string }[]> {
  const runs = await runCli(['runs', 'count', ...store, '--json']);
  assert.equal(runs.code, 0, runs.stderr);
  return (JSON.parse(runs.stdout) as { id: number; outcome: string }[]).sort((a, b) => a.id - b.id);
}

async function eventTypes(store: string[]): Promise<string[]> {
  const events = await runCli(['events', 'count', ...store, '--json']);
  assert.equal(events.code, 0, events.stderr);
  return (JSON.parse(events.stdout) as { type: string }[]).map((event) => event.type);
}

test('a stopped worker past its lease is unresponsive in ckpt status, and its run ends completed, never crashed', { timeout: 60_000 }, async () => {
  const { store, worker } = await startStopped(tempDir());
  const status = await runCli(['status', ...store]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /count .* unresponsive .*\(unresponsive, stopped: no heartbeat for .*, lease expired\)/);
  assert.doesNotMatch(status.stdout, /crashed/);
  const json = await runCli(['status', ...store, '--json']);
  const [instance] = JSON.parse(json.stdout) as { unresponsive?: { runId: number; stopped: boolean }[] }[];
  assert.deepEqual(
    instance?.unresponsive?.map((run) => [run.runId, run.stopped]),
    [[1, true]],
  );
  assert.deepEqual(
    (await runsOf(store)).map((run) => run.outcome),
    ['running'],
    'ckpt runs (which reaps too) left it running',
  );

  worker.child.kill('SIGCONT');
  const ended = await worker.done;
  assert.equal(ended.code, 0, ended.stderr);
  assert.deepEqual(
    (await runsOf(store)).map((run) => run.outcome),
    ['completed'],
  );
  assert.ok(!(await eventTypes(store)).includes('run:crashed'), 'no run:crashed in the log of a run that completed');
});

test("a second worker takes a stopped worker's expired lease; the stopped one, continued, ends lost, not crashed", { timeout: 60_000 }, async () => {
  const { store, worker } = await startStopped(tempDir());
  const second = await runCli(['run', fixture('count-job.ts'), ...store, ...leaseFlags, '--quiet'], { env });
  assert.equal(second.code, 0, second.stderr);
  worker.child.kill('SIGCONT');
  await worker.done;
  assert.deepEqual(
    (await runsOf(store)).map((run) => run.outcome),
    ['lost', 'completed'],
  );
  assert.ok(!(await eventTypes(store)).includes('run:crashed'));
});

test('a stopped worker woken after another completed the instance says its run was lost, exit 4, not "completed"', { timeout: 60_000 }, async () => {
  const { store, worker } = await startStopped(tempDir(), false);
  const second = await runCli(['run', fixture('count-job.ts'), ...store, ...leaseFlags, '--quiet'], { env });
  assert.equal(second.code, 0, second.stderr);
  worker.child.kill('SIGCONT');
  const woken = await worker.done;
  assert.deepEqual(
    (await runsOf(store)).map((run) => run.outcome),
    ['lost', 'completed'],
  );
  assert.equal(woken.code, 4, woken.stderr);
  assert.doesNotMatch(woken.stderr, /^completed/m);
  assert.match(
    woken.stderr,
    /^lost count .*: this worker's run 1 \(shard main\) lost its lease to another worker \(the lease was taken by another worker\), and the others completed the instance; .* Nothing is left to do$/m,
  );
  const summary = JSON.parse(woken.stdout.split('\n').find((line) => line.includes('"type":"summary"')) ?? '{}') as {
    outcome?: string;
    exitCode?: number;
    lost?: { runId: number; shard: string }[];
  };
  assert.deepEqual([summary.outcome, summary.exitCode], ['lost', 4]);
  assert.deepEqual(
    summary.lost?.map((run) => [run.runId, run.shard]),
    [[1, 'main']],
  );
});

test('a stopped worker that is then killed is crashed: its process is gone', { timeout: 60_000 }, async () => {
  const { store, worker } = await startStopped(tempDir());
  worker.child.kill('SIGKILL');
  await worker.done;
  const status = await runCli(['status', ...store]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /count .* resumable /);
  assert.deepEqual(
    (await runsOf(store)).map((run) => run.outcome),
    ['crashed'],
  );
});
