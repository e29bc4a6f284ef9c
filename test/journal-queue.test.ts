// Unit tests of the journal queue's batching (pure logic: the store is a recorder of batches).
// Crashes inside group commits are proven with real stores in crash-group-commit.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOLD_MS, JournalQueue } from '../src/job/effects/journal-queue.ts';
import type { JournalOutcome, JournalWrite } from '../src/store/store.ts';

const scope = { instanceId: 1, generation: 1 };
const claim = (key: string): JournalWrite => ({ kind: 'claim', scope, key, events: [] });
const done = (key: string): JournalWrite => ({ kind: 'done', scope, key, result: null, events: [] });
const turn = () => new Promise((resolve) => setImmediate(resolve));

function recorder() {
  const batches: string[][] = [];
  const store = {
    async journal(_instanceId: number, writes: readonly JournalWrite[]): Promise<JournalOutcome[]> {
      batches.push(writes.map((write) => `${write.kind} ${'key' in write ? write.key : ''}`));
      return writes.map(() => undefined);
    },
  };
  return { batches, store };
}

test("a deferred completion waits for the next record's intent, queued after the loop's yield and a progress mark, and shares its commit", async () => {
  const { batches, store } = recorder();
  const queue = new JournalQueue(store, 1, undefined, 2000);
  const completion = queue.write(done('a:last'), { deferred: true });
  // Between two records the loop lets timers in (setImmediate) and may raise its progress mark (a round trip).
  await turn();
  await sleep(20);
  const intent = queue.write(claim('b:first'));
  await Promise.all([completion, intent]);
  assert.deepEqual(batches, [['done a:last', 'claim b:first']]);
});

test('a deferred completion that nothing follows is still written, HOLD_MS later', async () => {
  const { batches, store } = recorder();
  const queue = new JournalQueue(store, 1);
  const started = performance.now();
  await queue.write(done('a'), { deferred: true });
  assert.deepEqual(batches, [['done a']]);
  assert.ok(performance.now() - started >= HOLD_MS - 1);
});

test('a write someone waits on goes at the next turn, with the deferred ones queued before it', async () => {
  const { batches, store } = recorder();
  const queue = new JournalQueue(store, 1);
  const deferred = queue.write(done('a'), { deferred: true });
  const waited = queue.write(claim('b'));
  await turn();
  assert.deepEqual(batches, [['done a', 'claim b']]);
  await Promise.all([deferred, waited]);
});
