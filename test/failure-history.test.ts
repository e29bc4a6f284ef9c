// Store.failureHistory, part of the Store contract (the auto policy's MTBF comes from it), run
// against every backend that CKPT_TEST_STORES selects.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Store } from '../src/store.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

for (const factory of selectedStoreFactories()) {
  describe(`Store contract: ${factory.name}: failureHistory`, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ store, dispose } = await factory.create());
    });
    after(async () => {
      await dispose();
    });

    it('counts crashed runs and the time runs spent running, over all the instance’s runs', async () => {
      const instance = await store.instance('history', 'h', { params: {}, version: null });
      assert.deepEqual(await store.failureHistory(instance.id), { runningMs: 0, crashed: 0 });
      await store.ensureShards(instance, ['a', 'b'], { version: null });
      const first = await store.claim(instance, 'w:1', 60_000);
      assert.ok(first);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await store.heartbeat(first, { processed: 1 });
      const reaped = await store.reapCrashed(instance.id, (worker) => worker === 'w:1');
      assert.equal(reaped.length, 1);
      const second = await store.claim(instance, 'w:2', 60_000);
      assert.ok(second);
      await store.release(second, 'interrupted', {});
      const history = await store.failureHistory(instance.id);
      assert.equal(history.crashed, 1);
      assert.ok(history.runningMs >= 15 && history.runningMs < 10_000, String(history.runningMs));
      const other = await store.instance('history', 'other', { params: {}, version: null });
      assert.deepEqual(await store.failureHistory(other.id), { runningMs: 0, crashed: 0 }, 'per instance');
    });
  });
}
