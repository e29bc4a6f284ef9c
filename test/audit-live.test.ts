// `ckpt audit --verify` and the dashboard read an instance's chain while a job may be appending
// to it. Read naively (the log, then the head), an event appended in between makes an intact
// chain look tampered with ("the head is ahead of the log"); `readChain` (the head, the log, the
// head again) gives one consistent snapshot. On every store, with real appends through the store.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defineJob, range, runJob } from '../src/index.ts';
import { readChain, verifyChain } from '../src/store/audit-chain.ts';
import type { Store } from '../src/store.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

/** The store, with one more event appended (as a running job would) right after each read of the log. */
function withAppender(store: Store, instanceId: number, generation: number): Store {
  let appended = 0;
  return new Proxy(store, {
    get(target, name) {
      if (name !== 'listEvents') {
        const value = Reflect.get(target, name, target);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (...args: Parameters<Store['listEvents']>) => {
        const events = await target.listEvents(...args);
        appended++;
        await target.appendEvents(instanceId, generation, [{ type: 'log', at: Date.now(), runId: null, shard: 'main', data: { message: `live ${appended}` } }]);
        return events;
      };
    },
  });
}

for (const factory of selectedStoreFactories()) {
  describe(`audit chain read while appended: ${factory.name}`, { skip: await factory.skip?.() }, () => {
    test('the snapshot verifies intact where the naive read sees a broken chain', async () => {
      const { store, dispose } = await factory.create();
      try {
        const job = defineJob<number>({ name: 'live-audit', source: () => range(0, 20), process() {} });
        const summary = await runJob(job, { store });
        assert.equal(summary.outcome, 'completed', summary.error);
        const [instance] = await store.listInstances();
        assert.ok(instance);
        const live = withAppender(store, instance.id, instance.generation);

        const naiveEvents = await live.listEvents(instance.id);
        const naive = verifyChain(naiveEvents, await live.chainHead(instance.id), undefined);
        assert.equal(naive.ok, false, 'read naively, an append between the two reads looks like tampering');

        const { head, events } = await readChain(live, instance.id);
        const report = verifyChain(events, head, undefined);
        assert.ok(report.ok, report.ok ? '' : report.problem);
        assert.equal(events.at(-1)?.chain?.seq, head?.seq, 'the snapshot ends at the head it read first');

        // At rest, the next read takes in every appended event.
        const rest = await readChain(store, instance.id);
        assert.ok(verifyChain(rest.events, rest.head, undefined).ok);
        assert.ok(rest.events.length > events.length);
      } finally {
        await dispose();
      }
    });
  });
}
