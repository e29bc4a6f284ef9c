// How an instance ended is in its audit trail exactly once: one `instance:complete` per
// completion whatever the number of workers that finished shards, and a run killed after its
// shard-completing commit (before its run:end) is recorded by the worker that completes the
// instance, which writes the instance:complete the killed one never did.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

interface Event {
  type: string;
  runId: number | null;
  data: { outcome?: string; recordedBy?: string; generation?: number };
}

async function eventsOf(store: string): Promise<Event[]> {
  const listed = await runCli(['events', 'ended', '--store', store, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  return JSON.parse(listed.stdout) as Event[];
}

test('three workers finishing shards of one instance write one instance:complete', { timeout: 120_000 }, async () => {
  const store = `sqlite:${join(tempDir('ckpt-instance-end-'), 'store.db')}`;
  const args = ['run', fixture('ended-job.ts'), '--store', store, '--quiet', '--wait'];
  const workers = [0, 1, 2].map(() => spawnCli(args, { env: { CKPT_TEST_SHARDS: '9', CKPT_TEST_SPIN_MS: '20' } }));
  const results = await Promise.all(workers.map((worker) => worker.done));
  for (const result of results) assert.equal(result.code, 0, result.stderr);
  const events = await eventsOf(store);
  const ends = events.filter((event) => event.type === 'run:end' && event.data.outcome === 'completed');
  assert.equal(ends.length, 9, 'each shard run ended, once');
  const workersThatRan = new Set(events.filter((event) => event.type === 'run:start').map((event) => (event.data as { worker?: string }).worker));
  assert.ok(workersThatRan.size >= 2, `at least two workers finished shards (${[...workersThatRan].join(', ')})`);
  assert.equal(events.filter((event) => event.type === 'instance:complete').length, 1, events.map((event) => event.type).join(' '));
});

test('a live worker slow to write its run:end after completing its shard is not recorded ended twice by the worker that completes the instance', {
  timeout: 60_000,
}, async () => {
  const path = join(tempDir('ckpt-instance-end-'), 'store.db');
  const store = `sqlite:${path}`;
  const env = { CKPT_TEST_SHARDS: '2', CKPT_TEST_SPIN_MS: '20' };
  // The slow one takes a shard first and stalls a second between its shard's completing commit and its run:end…
  const slow = spawn(process.execPath, [fixture('slow-to-end.ts'), path], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const slowDone = new Promise<number | null>((resolve) => slow.on('exit', (code) => resolve(code)));
  await waitForOutput(slow, (out) => out.includes('started'));
  // …while this one completes the other shard, and with it the instance.
  const other = await runCli(['run', fixture('ended-job.ts'), '--store', store, '--quiet', '--wait'], { env });
  assert.equal(other.code, 0, other.stderr);
  assert.equal(await slowDone, 0);
  const events = await eventsOf(store);
  const ends = events.filter((event) => event.type === 'run:end');
  assert.equal(ends.length, 2, `one run:end per run: ${JSON.stringify(ends)}`);
  assert.deepEqual(new Set(ends.map((event) => event.runId)).size, 2);
  assert.ok(
    ends.every((event) => event.data.recordedBy === undefined),
    'each live worker recorded its own end',
  );
  assert.equal(events.filter((event) => event.type === 'instance:complete').length, 1);
});

test("a kill between a shard's completion and its run:end: the next worker records both ends", { timeout: 60_000 }, async () => {
  const path = join(tempDir('ckpt-instance-end-'), 'store.db');
  const store = `sqlite:${path}`;
  const killed = await new Promise<NodeJS.Signals | null>((resolve) => {
    const child = spawn(process.execPath, [fixture('kill-after-shard-complete.ts'), path], {
      env: { ...process.env, CKPT_TEST_SHARDS: '1' },
      stdio: 'inherit',
    });
    child.on('exit', (_code, signal) => resolve(signal));
  });
  assert.equal(killed, 'SIGKILL');
  const before = await eventsOf(store);
  assert.ok(!before.some((event) => event.type === 'run:end' || event.type === 'instance:complete'), 'the kill left no end');

  const next = await runCli(['run', fixture('ended-job.ts'), '--store', store, '--quiet'], { env: { CKPT_TEST_SHARDS: '1' } });
  assert.equal(next.code, 0, next.stderr);
  const events = await eventsOf(store);
  const killedRun = before.find((event) => event.type === 'run:start')?.runId;
  const end = events.find((event) => event.type === 'run:end' && event.runId === killedRun);
  assert.equal(end?.data.outcome, 'completed', JSON.stringify(events));
  assert.match(end?.data.recordedBy ?? '', /:\d+$/, 'says which worker recorded it');
  assert.equal(events.filter((event) => event.type === 'instance:complete').length, 1);
  // Once: a later run finds it complete and writes nothing more.
  const again = await runCli(['run', fixture('ended-job.ts'), '--store', store, '--quiet'], { env: { CKPT_TEST_SHARDS: '1' } });
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await eventsOf(store)).length, events.length);
});
