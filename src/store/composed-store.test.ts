import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ComposedStore, type StoreParts } from './composed-store.ts';

/** Parts whose every method answers with its own name, counting calls to close. */
function recordingParts(): { parts: StoreParts; closes: () => number; calls: string[] } {
  let closes = 0;
  const calls: string[] = [];
  const answering = new Proxy(
    {},
    {
      get: (_target, name) => async () => {
        calls.push(String(name));
        return String(name);
      },
    },
  );
  const parts = {
    lifecycle: {
      migrate: async () => undefined,
      close: async () => {
        closes++;
      },
    },
    instances: answering,
    leases: answering,
    checkpoints: answering,
    journal: answering,
    deadLetters: answering,
    history: answering,
    plans: answering,
    rateBuckets: answering,
    guards: answering,
  } as unknown as StoreParts;
  return { parts, closes: () => closes, calls };
}

const methods = Object.getOwnPropertyNames(ComposedStore.prototype).filter((name) => name !== 'constructor' && name !== 'closed' && name !== 'close');
/** The single journal writes are ComposedStore's own: each is a batch of one through `journal`. */
const batchesOfOne = new Set(['effectIntent', 'effectDone', 'effectFailed']);

test('every Store method reaches its concern while open', async () => {
  const { parts, calls } = recordingParts();
  const store = new ComposedStore('test', parts);
  for (const name of methods) {
    if (name === 'migrate') continue;
    const call = (store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[name];
    if (batchesOfOne.has(name)) {
      calls.length = 0;
      await call?.call(store, { instanceId: 1, generation: 1 }, 'key');
      assert.deepEqual(calls, ['journal'], `${name} is one call of journal`);
      continue;
    }
    assert.equal(await call?.call(store), name, `${name} delegates to the method of the same name`);
  }
});

test('after close, every call is refused with one StoreError, and close runs once', async () => {
  const { parts, closes } = recordingParts();
  const store = new ComposedStore('the-place', parts);
  await store.close();
  await store.close();
  assert.equal(closes(), 1);
  assert.equal(store.closed, true);
  assert.equal(methods.length, 49, 'migrate and the 48 methods of the nine other concerns');
  for (const name of methods) {
    const call = (store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[name];
    await assert.rejects(
      call?.call(store, { instanceId: 1, generation: 1 }, 'key') ?? Promise.resolve(),
      { name: 'StoreError', message: 'the store the-place is closed' },
      name,
    );
  }
});
