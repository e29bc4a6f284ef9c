// Adversarial races on one instance: two `--rerun`s (or a rerun and a reset) at the same moment
// must start ONE new generation, worked by one process; the other is refused naming the holder.
// A run whose instance was reset under it must end, not wait forever for a generation that
// moved on.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, LeaseHeldError, range, runJob } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { tempDir } from './helpers/cli.ts';

function countingJob(seen: Map<string, number>, worker: string) {
  return defineJob<number>({
    name: 'race',
    source: () => range(0, 200),
    checkpoint: { every: 50 },
    async process() {
      seen.set(worker, (seen.get(worker) ?? 0) + 1);
      await sleep(1);
    },
  });
}

test('two --rerun of a completed instance at the same moment: one new generation, one worker, the other refused', { timeout: 30_000 }, async () => {
  const path = join(tempDir('ckpt-race-'), 's.db');
  const seen = new Map<string, number>();
  const setup = new SqliteStore(path);
  await setup.migrate();
  assert.equal((await runJob(countingJob(seen, 'setup'), { store: setup, worker: 'setup:1' })).outcome, 'completed');
  await setup.close();
  seen.clear();

  const stores = [new SqliteStore(path), new SqliteStore(path)];
  for (const store of stores) await store.migrate();
  const outcomes = await Promise.allSettled(
    stores.map((store, i) => runJob(countingJob(seen, `w${i}`), { store, worker: `w${i}:1`, rerun: true, leaseMs: 60_000 })),
  );
  const generations = (await stores[0]?.listInstances('race'))?.map((instance) => instance.generation);
  for (const store of stores) await store.close();

  assert.deepEqual(generations, [2], 'one new generation, not one per process');
  assert.equal(seen.size, 1, `one process did the work, not ${[...seen.keys()].join(' and ')}`);
  const fulfilled = outcomes.filter((outcome) => outcome.status === 'fulfilled');
  const rejected = outcomes.filter((outcome) => outcome.status === 'rejected');
  assert.equal(fulfilled.length, 1);
  assert.equal(fulfilled[0]?.status === 'fulfilled' && fulfilled[0].value.outcome, 'completed');
  assert.equal(rejected.length, 1);
  assert.ok(
    rejected[0]?.status === 'rejected' && rejected[0].reason instanceof LeaseHeldError,
    String(rejected[0]?.status === 'rejected' && rejected[0].reason),
  );
});

test('an instance reset under a run that waits for another worker: the run ends (exit 4), it does not wait forever', { timeout: 30_000 }, async () => {
  const path = join(tempDir('ckpt-race-'), 's.db');
  const store = new SqliteStore(path);
  const other = new SqliteStore(path);
  await store.migrate();
  await other.migrate();
  let otherClaimed = false;
  const job = defineJob<number>({
    name: 'reset-under',
    shards: () => ['a', 'b'],
    source: () => range(0, 5),
    async process(_n, ctx) {
      if (otherClaimed) return;
      // Another worker takes shard b while this one works on a.
      const instance = (await other.listInstances('reset-under'))[0];
      assert.ok(instance);
      assert.equal((await other.claim(instance, 'other:1', 60_000))?.shard, 'b');
      otherClaimed = ctx.shard === 'a';
    },
  });
  const running = runJob(job, { store, worker: 'me:1', leaseMs: 60_000 });
  // Shard a done, b held: the run waits. Now the instance is reset (another process's --rerun or
  // `ckpt reset` in the moment nobody seemed to hold it).
  while (!otherClaimed) await sleep(10);
  await sleep(200);
  const instance = (await other.listInstances('reset-under'))[0];
  assert.ok(instance);
  await other.resetInstance(instance.id);
  const outcome = await Promise.race([
    running.then(
      () => 'returned',
      (error: unknown) => error,
    ),
    sleep(5_000).then(() => 'still waiting'),
  ]);
  await store.close();
  await other.close();
  assert.ok(outcome instanceof Error, `expected the run to end with an error, got: ${String(outcome)}`);
  assert.match(outcome.message, /was reset to generation 2 by another process while this run worked on generation 1/);
  assert.equal((outcome as { exitCode?: number }).exitCode, 4);
});
