// A run's row holds all of its checkpoint time, the completing checkpoint's included, on every
// backend: `ckpt runs` (OVERHEAD) and the dashboard read it, and it must agree with the summary.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, range, runJob } from '../src/index.ts';
import type { Store } from '../src/store.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

for (const factory of selectedStoreFactories()) {
  describe(`run checkpoint time: ${factory.name}`, { skip: await factory.skip?.() }, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ store, dispose } = await factory.create());
    });
    after(async () => {
      await dispose();
    });

    /** The run rows of a job's one instance, with the summary that ran them. */
    async function runAndList(name: string, checkpoint?: { every: number }) {
      const job = defineJob<number>({
        name,
        source: () => range(0, 200),
        ...(checkpoint === undefined ? {} : { checkpoint }),
        async process(n) {
          if (n % 50 === 0) await sleep(1);
        },
      });
      const summary = await runJob(job, { store });
      assert.equal(summary.outcome, 'completed');
      const instances = await store.listInstances(name);
      assert.equal(instances.length, 1);
      const runs = await store.listRuns(instances[0]!.id);
      assert.equal(runs.length, 1);
      return { summary, run: runs[0]! };
    }

    test('a run whose only checkpoint completes it (auto policy) stores that checkpoint’s time', async () => {
      const { summary, run } = await runAndList('overhead-auto');
      assert.equal(summary.checkpoints, 1, 'a short auto run checkpoints once, at the end');
      assert.equal(run.checkpoints, 1);
      assert.ok(summary.checkpointMs > 0);
      assert.ok(run.checkpointMs > 0, `the run row says ${run.checkpointMs} ms of checkpoints`);
      assert.ok(Math.abs(run.checkpointMs - summary.checkpointMs) < 1e-6, `row ${run.checkpointMs} ms, summary ${summary.checkpointMs} ms`);
    });

    test('a run of several checkpoints stores all of them, the last included', async () => {
      const { summary, run } = await runAndList('overhead-every', { every: 50 });
      assert.equal(run.checkpoints, summary.checkpoints);
      assert.ok(summary.checkpoints >= 4);
      assert.ok(Math.abs(run.checkpointMs - summary.checkpointMs) < 1e-6, `row ${run.checkpointMs} ms, summary ${summary.checkpointMs} ms`);
    });
  });
}
