// How a claim waits for another live run's intent (guarantee 4 across shards), two shard runs of
// one instance on a real SQLite store, each with its own Effects as two workers have: the second
// to reach a key waits while the first's `fn` runs and gets its result; claims the key again if
// that `fn` failed; acts on the intent (verify) only once its writer is gone; and says what it
// waits on (`effect:waiting`) once a wait passes 5 s. test/shared-keys.test.ts runs the same with
// real processes on all three stores.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventMap, EventType } from '../src/events.ts';
import { Effects } from '../src/job/effects/effects.ts';
import { SqliteStore } from '../src/sqlite.ts';
import type { Lease, Store } from '../src/store.ts';
import { tempDir } from './helpers/cli.ts';

interface Told {
  type: EventType;
  data: unknown;
}

async function twoRuns(leaseMs = 30_000): Promise<{ store: Store; east: Lease; west: Lease; eastClaimedAt: number }> {
  const store = new SqliteStore(join(tempDir('ckpt-shared-wait-'), 'store.db'));
  await store.migrate();
  const instance = await store.instance('shared-wait', 'h', { params: {}, version: null });
  await store.ensureShards(instance, ['east', 'west'], { version: null });
  const eastClaimedAt = performance.now();
  const east = await store.claim(instance, 'worker-east', leaseMs);
  const west = await store.claim(instance, 'worker-west', 30_000);
  assert.ok(east && west && east.shard !== west.shard);
  return { store, east, west, eastClaimedAt };
}

function effectsOf(store: Store, lease: Lease, told: Told[] = []): Effects {
  return new Effects({
    store,
    scope: { instanceId: lease.instanceId, generation: lease.generation },
    job: 'shared-wait',
    shard: lease.shard,
    runId: lease.runId,
    secretKey: () => Buffer.alloc(32),
    notify: <K extends EventType>(type: K, data: EventMap[K]) => told.push({ type, data }),
    fence: { shardId: lease.shardId, token: lease.token, shard: lease.shard, runId: lease.runId },
  });
}

/** A promise and the functions that settle it. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: Error) => void } {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

/** A call that runs until `release()` (or `fail()`). */
function held<T>(value: T): { fn: () => Promise<T>; started: Promise<void>; release: () => void; fail: (error: Error) => void } {
  const started = deferred<void>();
  const done = deferred<T>();
  return {
    fn: () => {
      started.resolve();
      return done.promise;
    },
    started: started.promise,
    release: () => done.resolve(value),
    fail: (error) => done.reject(error),
  };
}

describe('a claim that meets another live run’s intent', { concurrency: true }, () => {
  test('waits while that fn runs, then returns its result without running its own fn or verify', async () => {
    const { store, east, west } = await twoRuns();
    try {
      const call = held({ by: 'east' });
      const first = effectsOf(store, east).once('disable:ana', call.fn);
      await call.started;
      let ran = false;
      let asked = false;
      const second = effectsOf(store, west).once(
        'disable:ana',
        () => {
          ran = true;
          return { by: 'west' };
        },
        {
          verify: () => {
            asked = true;
            return false;
          },
        },
      );
      await sleep(150);
      call.release();
      assert.deepEqual(await first, { by: 'east' });
      assert.deepEqual(await second, { by: 'east' }, 'the one result of the key');
      assert.equal(ran, false, 'its own fn never ran');
      assert.equal(asked, false, 'an effect in flight is not in doubt: verify was not asked');
    } finally {
      await store.close();
    }
  });

  test('claims the key again when that fn failed, and runs its own', async () => {
    const { store, east, west } = await twoRuns();
    try {
      const call = held({ by: 'east' });
      const first = effectsOf(store, east).once('disable:ben', call.fn);
      await call.started;
      const second = effectsOf(store, west).once('disable:ben', () => ({ by: 'west' }));
      await sleep(100);
      call.fail(new Error('directory said 503'));
      await assert.rejects(first, /503/);
      assert.deepEqual(await second, { by: 'west' });
      assert.equal((await store.effect({ instanceId: west.instanceId, generation: west.generation }, 'disable:ben'))?.status, 'done');
    } finally {
      await store.close();
    }
  });

  test('once its writer’s lease expired: fences that run, settles the intent by verify, and the writer woken late cannot overwrite the result', async () => {
    const { store, east, west, eastClaimedAt } = await twoRuns(600);
    try {
      const call = held({ by: 'east' });
      const eastTold: Told[] = [];
      const frozen = effectsOf(store, east, eastTold).once('disable:cy', call.fn);
      await call.started;
      let actedAt = 0;
      const result = await effectsOf(store, west).once(
        'disable:cy',
        () => {
          actedAt = performance.now();
          return { by: 'west' };
        },
        { verify: () => false },
      );
      assert.ok(actedAt - eastClaimedAt >= 600, 'it acted only once the writer’s lease had expired');
      assert.deepEqual(result, { by: 'west' }, 'verify said it had not happened: run here');
      // The frozen writer wakes: its call went out (nothing can stop that), but its completion is
      // fenced: the journal keeps the result recorded first and says so.
      call.release();
      await frozen;
      const scope = { instanceId: west.instanceId, generation: west.generation };
      assert.deepEqual((await store.effect(scope, 'disable:cy'))?.result, { by: 'west' }, 'the first result stays');
      const late = (await store.listEvents(west.instanceId)).filter((event) => event.type === 'effect:late-completion');
      assert.equal(late.length, 1, 'the late completion is recorded');
      assert.equal(late[0]?.data.kept, 'first');
      assert.ok(eastTold.some((event) => event.type === 'effect:late-completion'));
      assert.equal(await store.heartbeat(east, {}), false, 'the woken run’s lease is gone');
    } finally {
      await store.close();
    }
  });

  test('two runs that find a dead writer’s intent at once: one settles it, the other waits for that one (fn runs once)', async () => {
    const store = new SqliteStore(join(tempDir('ckpt-shared-wait-'), 'store.db'));
    await store.migrate();
    try {
      const instance = await store.instance('shared-wait', 'h', { params: {}, version: null });
      await store.ensureShards(instance, ['gone', 'east', 'west'], { version: null });
      const gone = await store.claim(instance, 'worker-gone', 300);
      const east = await store.claim(instance, 'worker-east', 30_000);
      const west = await store.claim(instance, 'worker-west', 30_000);
      assert.ok(gone && east && west);
      // The writer starts its call and freezes past its lease: the key is in doubt for both others.
      const frozen = held({ by: 'gone' });
      const late = effectsOf(store, gone).once('disable:eve', frozen.fn);
      await frozen.started;
      await sleep(400);
      // Both read the dead writer's intent before either decides: each verify waits for the other's.
      let asked = 0;
      const bothAsked = deferred<void>();
      const verify = async () => {
        if (++asked === 2) bothAsked.resolve();
        await bothAsked.promise;
        return false;
      };
      const calls: string[] = [];
      const call = (by: string) => () => {
        calls.push(by);
        return { by };
      };
      const [a, b] = await Promise.all([
        effectsOf(store, east).once('disable:eve', call('east'), { verify }),
        effectsOf(store, west).once('disable:eve', call('west'), { verify }),
      ]);
      assert.equal(asked, 2, 'both found the key in doubt');
      assert.equal(calls.length, 1, `the effect ran once, not once per run that verified it (ran on: ${calls.join(', ')})`);
      assert.deepEqual(a, b, 'both got the one result');
      const entry = await store.effect({ instanceId: east.instanceId, generation: east.generation }, 'disable:eve');
      assert.equal(entry?.status, 'done');
      assert.equal(entry?.attempts, 2, 'one start after the dead writer’s');
      frozen.release();
      await late.catch(() => undefined);
    } finally {
      await store.close();
    }
  });

  test('says what it waits on once a wait passes 5 s (effect:waiting, once)', async () => {
    const { store, east, west } = await twoRuns();
    try {
      const call = held({ by: 'east' });
      const first = effectsOf(store, east).once('disable:di', call.fn);
      await call.started;
      const told: Told[] = [];
      const second = effectsOf(store, west, told).once('disable:di', () => ({ by: 'west' }));
      await sleep(4000);
      assert.deepEqual(
        told.filter((event) => event.type === 'effect:waiting'),
        [],
        'not before 5 s',
      );
      await sleep(2000);
      call.release();
      await first;
      assert.deepEqual(await second, { by: 'east' });
      const waiting = told.filter((event) => event.type === 'effect:waiting');
      assert.equal(waiting.length, 1, 'told once');
      const data = waiting[0]?.data as EventMap['effect:waiting'];
      assert.equal(data.key, 'disable:di');
      assert.equal(data.holderRunId, east.runId);
      assert.equal(data.holderShard, east.shard);
      assert.equal(data.holderWorker, 'worker-east');
      assert.ok(data.waitedMs >= 5000);
    } finally {
      await store.close();
    }
  });
});
