import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ComposedStore, type StoreParts } from './composed-store.ts';

/** Parts whose every method answers with its own name, counting calls to close. */
function recordingParts(): { parts: StoreParts; closes: () => number } {
  let closes = 0;
  const answering = new Proxy({}, { get: (_target, name) => async () => String(name) });
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
  } as unknown as StoreParts;
  return { parts, closes: () => closes };
}

const methods = Object.getOwnPropertyNames(ComposedStore.prototype).filter((name) => name !== 'constructor' && name !== 'closed' && name !== 'close');

test('every Store method reaches its concern while open', async () => {
  const store = new ComposedStore('test', recordingParts().parts);
  for (const name of methods) {
    if (name === 'migrate') continue;
    const call = (store as unknown as Record<string, () => Promise<unknown>>)[name];
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
  assert.equal(methods.length, 34, 'migrate and the 33 methods of the six other concerns');
  for (const name of methods) {
    const call = (store as unknown as Record<string, () => Promise<unknown>>)[name];
    await assert.rejects(call?.call(store) ?? Promise.resolve(), { name: 'StoreError', message: 'the store the-place is closed' }, name);
  }
});
