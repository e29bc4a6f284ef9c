// Idle workers wake on LISTEN/NOTIFY: a worker with nothing to claim used to poll every second, so it noticed the
// instance's completion (and a freed shard) up to a second late. On PostgreSQL it waits on
// LISTEN/NOTIFY: woken by the release that completes the instance, it returns at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, type RunEvent, range, runJob } from '../src/index.ts';
import { PostgresStore } from '../src/postgres.ts';
import { freshDatabase } from './helpers/postgres.ts';

const job = defineJob<number>({
  name: 'idle-wake',
  shards: () => ['fast', 'slow'],
  source: ({ shard }) => range(0, shard === 'fast' ? 3 : 12),
  checkpoint: { every: 100 },
  async process(n, ctx) {
    // `slow` ends at a random moment of the waiting worker's old one-second poll.
    await sleep(ctx.shard === 'slow' && n === 0 ? jitterMs : 100);
  },
});
let jitterMs = 0;

test('postgres: a worker waiting for the rest of its instance returns within 250 ms of the last shard completing (four times)', async (t) => {
  const lags: number[] = [];
  const seen: string[][] = [];
  for (let trial = 0; trial < 4; trial++) {
    jitterMs = 100 + Math.random() * 1000;
    const database = await freshDatabase();
    const stores = [new PostgresStore({ connectionString: database.url }), new PostgresStore({ connectionString: database.url })];
    try {
      await stores[0]?.migrate();
      // Two workers at once: one takes `fast` and, with nothing left to claim, waits for `slow`.
      const ends = await Promise.all(
        stores.map(async (store, index) => {
          const shards: string[] = [];
          const onEvent = (event: RunEvent) => {
            if (event.type === 'run:start') shards.push((event.data as { shard: string }).shard);
          };
          const summary = await runJob(job, { store, wait: true, leaseMs: 60_000, worker: `w${index}`, onEvent });
          return { at: performance.now(), shards, outcome: summary.outcome };
        }),
      );
      assert.deepEqual(ends.map((end) => end.outcome).sort(), ['completed', 'completed']);
      const waiter = ends.find((end) => !end.shards.includes('slow'));
      const finisher = ends.find((end) => end.shards.includes('slow'));
      assert.ok(waiter && finisher, `each worker took one shard: ${JSON.stringify(ends)}`);
      lags.push(Math.round(waiter.at - finisher.at));
      seen.push(ends.map((end) => end.shards.join('+')));
    } finally {
      for (const store of stores) await store.close();
      await database.drop();
    }
  }
  t.diagnostic(`lags: ${lags.join(', ')} ms; ${JSON.stringify(seen)}`);
  assert.ok(
    lags.every((lag) => lag < 250),
    `the waiting worker returned ${lags.join(', ')} ms after the instance completed`,
  );
});
