import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chainEvents, GENESIS, keyMismatch, verifyChain } from './audit-chain.ts';
import type { ChainHead, StoredEvent } from './store-types.ts';

const KEY = Buffer.alloc(32, 7);

/** A chain of `n` events of instance 1, as a store would return them (ids from 1). */
function chain(n: number, key: Buffer | undefined, from?: { events: StoredEvent[]; head: ChainHead }): { events: StoredEvent[]; head: ChainHead } {
  const before = from?.events ?? [];
  const linked = chainEvents(
    1,
    1,
    from?.head,
    Array.from({ length: n }, (_, i) => ({ type: i % 2 ? 'effect:done' : 'effect:start', shard: 'main', runId: 3, at: 1000 + i, data: { key: `k${i}` } })),
    key,
  );
  const events = linked.rows.map(
    (row, i): StoredEvent => ({
      id: before.length + i + 1,
      instanceId: 1,
      generation: 1,
      runId: row.runId,
      shard: row.shard,
      type: row.type,
      at: row.at,
      data: JSON.parse(row.data),
      chain: row.link,
    }),
  );
  return { events: [...before, ...events], head: linked.head };
}

const problem = (report: ReturnType<typeof verifyChain>) => (report.ok ? 'intact' : `${report.event?.id}: ${report.problem}`);

test('an untouched chain verifies, keyed or not; the first link starts from GENESIS', () => {
  for (const key of [undefined, KEY]) {
    const { events, head } = chain(6, key);
    assert.equal(events[0]?.chain?.prevHash, GENESIS);
    const report = verifyChain(events, head, key);
    assert.ok(report.ok);
    assert.equal(report.chained, 6);
    assert.equal(report.keyed, key === undefined ? 0 : 6);
  }
});

test('appends continue the chain from its head', () => {
  const first = chain(3, KEY);
  const both = chain(2, KEY, first);
  assert.deepEqual(
    both.events.map((event) => event.chain?.seq),
    [1, 2, 3, 4, 5],
  );
  assert.ok(verifyChain(both.events, both.head, KEY).ok);
});

test('edited, deleted, swapped, truncated, unlinked: each named at the first bad event', () => {
  const { events, head } = chain(6, undefined);
  const edited = events.map((event) => (event.id === 3 ? { ...event, data: { key: 'other' } } : event));
  assert.match(problem(verifyChain(edited, head, undefined)), /^3: its content does not match its hash/);
  const deleted = events.filter((event) => event.id !== 3);
  assert.match(problem(verifyChain(deleted, head, undefined)), /^4: the event before it \(chain position 3\) is missing/);
  const twoDeleted = events.filter((event) => event.id !== 3 && event.id !== 4);
  assert.match(problem(verifyChain(twoDeleted, head, undefined)), /^5: 2 events before it \(chain position 3–4\) are missing/);
  const swapped = [events[0], events[2], events[1], ...events.slice(3)].map((event, i) => ({ ...(event as StoredEvent), id: i + 1 }));
  assert.match(problem(verifyChain(swapped, head, undefined)), /^2: it is out of order: chain position 3 where 2 belongs/);
  assert.match(problem(verifyChain(events.slice(0, 5), head, undefined)), /^5: the event after it is missing/);
  assert.match(problem(verifyChain(events, undefined, undefined)), /^6: the chain's head record is missing/);
  const unlinked = [...events, { ...(events[5] as StoredEvent), id: 7, chain: null }];
  assert.match(problem(verifyChain(unlinked, head, undefined)), /^7: it is not linked into the chain/);
});

test('events from before the chain are counted, not failed', () => {
  const { events, head } = chain(2, undefined);
  const legacy = { ...(events[0] as StoredEvent), id: 0, chain: null };
  const report = verifyChain([legacy, ...events], head, undefined);
  assert.ok(report.ok);
  assert.equal(report.legacy, 1);
});

test('a keyed chain needs its key; another key, or a rebuild without it, fails', () => {
  const { events, head } = chain(4, KEY);
  const noKey = verifyChain(events, head, undefined);
  assert.ok(!noKey.ok && noKey.needsKey);
  assert.match(problem(verifyChain(events, head, Buffer.alloc(32, 8))), /^1: its content does not match its hash/);
  // A forger without the key rebuilds from event 3 with plain SHA-256.
  const kept = { events: events.slice(0, 2), head: { seq: 2, hash: events[1]?.chain?.hash ?? '' } };
  const forged = chain(2, undefined, kept);
  assert.match(problem(verifyChain(forged.events, forged.head, KEY)), /^3: it is not keyed although the events before it are/);
});

test('keyMismatch: a keyed chain takes only its key; an unkeyed or empty one takes any, or none', () => {
  const keyed = chain(3, KEY).events.at(-1);
  assert.equal(keyMismatch(keyed, KEY), undefined);
  assert.equal(keyMismatch(keyed, undefined), 'missing');
  assert.equal(keyMismatch(keyed, Buffer.alloc(32, 8)), 'other');
  const plain = chain(3, undefined).events.at(-1);
  for (const key of [undefined, KEY]) assert.equal(keyMismatch(plain, key), undefined);
  assert.equal(keyMismatch(undefined, undefined), undefined);
  // An unkeyed chain that took a key: from then on it is keyed.
  const upgraded = chain(2, KEY, chain(2, undefined));
  assert.equal(verifyChain(upgraded.events, upgraded.head, KEY).ok, true);
  assert.equal(keyMismatch(upgraded.events.at(-1), undefined), 'missing');
});
