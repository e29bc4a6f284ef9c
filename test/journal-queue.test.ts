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

/**
 * A store that sends ahead: each batch sent is recorded and answered when the test says, as a
 * server that keeps the order of the sends would (applied only if the one before it was).
 */
function aheadStore() {
  const log: string[] = [];
  const answers: ((applied: boolean) => void)[] = [];
  const names = (writes: readonly JournalWrite[]) => writes.map((write) => ('key' in write ? write.key : '')).join(',');
  const store = {
    sendAhead(_instanceId: number, writes: readonly JournalWrite[]): Promise<boolean> | undefined {
      if (writes.some((write) => write.kind === 'intent')) return undefined;
      log.push(`ahead ${names(writes)}`);
      return new Promise<boolean>((resolve) => answers.push(resolve));
    },
    async journal(_instanceId: number, writes: readonly JournalWrite[]): Promise<JournalOutcome[]> {
      log.push(`journal ${names(writes)}`);
      if (writes.some((write) => 'key' in write && write.key.startsWith('bad'))) throw new Error('refused');
      return writes.map(() => undefined);
    },
  };
  return { log, answers, store };
}

test('sent ahead: at most AHEAD batches on their way, the next sent as soon as one settles', async () => {
  const { log, answers, store } = aheadStore();
  const queue = new JournalQueue(store, 1, undefined, HOLD_MS, 2);
  const a = queue.write(claim('a'));
  await turn();
  const b = queue.write(claim('b'));
  await turn();
  const c = queue.write(claim('c'));
  await turn();
  assert.deepEqual(log, ['ahead a', 'ahead b'], 'two on their way, the third waits');
  answers[0]?.(true);
  await a;
  await turn();
  assert.deepEqual(log, ['ahead a', 'ahead b', 'ahead c']);
  answers[1]?.(true);
  answers[2]?.(true);
  await Promise.all([b, c]);
});

test('sent ahead: one not applied is written again with journal, and so is every batch behind it, in order, before anything new goes', async () => {
  const { log, answers, store } = aheadStore();
  const queue = new JournalQueue(store, 1, undefined, HOLD_MS, 2);
  const a = queue.write(claim('a'));
  await turn();
  const b = queue.write(claim('b'));
  await turn();
  const c = queue.write(claim('c'));
  answers[0]?.(false);
  answers[1]?.(false);
  assert.deepEqual(await Promise.all([a, b]), [undefined, undefined]);
  await turn();
  assert.deepEqual(log, ['ahead a', 'ahead b', 'journal a', 'journal b', 'ahead c'], 'c waited for both to be written again');
  answers[2]?.(true);
  assert.equal(await c, undefined);
});

test('sent ahead: a batch that cannot go ahead waits for the ones on their way, then goes with journal', async () => {
  const { log, answers, store } = aheadStore();
  const queue = new JournalQueue(store, 1, undefined, HOLD_MS, 2);
  const a = queue.write(claim('a'));
  await turn();
  const again: JournalWrite = { kind: 'intent', scope, key: 'x', events: [] };
  const x = queue.write(again);
  await turn();
  await turn();
  assert.deepEqual(log, ['ahead a'], 'the intent waits behind the batch on its way');
  answers[0]?.(true);
  await Promise.all([a, x]);
  assert.deepEqual(log, ['ahead a', 'journal x']);
});

test('sent ahead: when writing one again fails, the batches behind it and the writes waiting are refused', async () => {
  const { log, answers, store } = aheadStore();
  const queue = new JournalQueue(store, 1, undefined, HOLD_MS, 2);
  const a = queue.write(claim('bad-a'));
  await turn();
  const b = queue.write(claim('b'));
  await turn();
  const c = queue.write(claim('c'));
  answers[0]?.(false);
  answers[1]?.(true);
  const settled = await Promise.allSettled([a, b, c]);
  assert.deepEqual(
    settled.map((result) => result.status),
    ['rejected', 'rejected', 'rejected'],
  );
  assert.deepEqual(log, ['ahead bad-a', 'ahead b', 'journal bad-a']);
  // The queue goes on: a later write is sent ahead again.
  const d = queue.write(claim('d'));
  await turn();
  answers[2]?.(true);
  await d;
  assert.deepEqual(log.at(-1), 'ahead d');
});
