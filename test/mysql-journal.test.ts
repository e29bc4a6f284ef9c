// The MySQL journal's usual batch: one round trip on a store made from a URL (its batch pool
// takes several statements at once), one statement a round trip on a store handed a pool; and on
// both, each guess of that way (the lease, the chain head, no entry for a claim) that does not
// hold sends the batch the locked way, with the answers and the chain the contract asks for.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { readChain, verifyChain } from '../src/store/audit-chain.ts';
import { createMysqlPool, MysqlDriver, type MysqlPool } from '../src/store/mysql/mysql-driver.ts';
import { MysqlStore } from '../src/store/mysql/mysql-store.ts';
import type { EffectEntry, JournalFence, JournalWrite, Lease } from '../src/store/store.ts';
import { freshMysqlDatabase, mysqlSkip } from './helpers/mysql.ts';

/** Round trips: every `query` the driver's connections send (both pools' connections are its `Connection`s). */
const connectionPrototype = (createRequire(import.meta.url)('mysql2') as { Connection: { prototype: { query: (...args: unknown[]) => unknown } } }).Connection
  .prototype;
let trips = 0;
const sent = connectionPrototype.query;
connectionPrototype.query = function (this: unknown, ...args: unknown[]) {
  trips++;
  return sent.apply(this, args);
};

async function counted<T>(work: () => Promise<T>): Promise<{ result: T; trips: number }> {
  const from = trips;
  const result = await work();
  return { result, trips: trips - from };
}

const fenceOf = (lease: Lease): JournalFence => ({ shardId: lease.shardId, token: lease.token, shard: lease.shard, runId: lease.runId });

for (const kind of ['url', 'pool'] as const) {
  describe(`MySQL journal batches, store made from ${kind === 'url' ? 'a URL' : 'a pool'}`, { skip: await mysqlSkip() }, () => {
    let database: Awaited<ReturnType<typeof freshMysqlDatabase>>;
    let pool: MysqlPool | undefined;
    const stores: MysqlStore[] = [];
    let counter = 0;
    const open = async (): Promise<MysqlStore> => {
      const store = kind === 'url' ? new MysqlStore({ url: database.url, database: database.name }) : new MysqlStore({ pool, database: database.name });
      await store.migrate();
      stores.push(store);
      return store;
    };
    before(async () => {
      database = await freshMysqlDatabase('ckpt_tj');
      if (kind === 'pool') pool = await createMysqlPool({ url: database.url, max: 4 });
    });
    after(async () => {
      for (const store of stores) await store.close();
      await pool?.end();
      await database.drop();
    });

    async function claimed(store: MysqlStore, leaseMs = 30_000) {
      counter++;
      const instance = await store.instance(`j-${counter}`, `hash-${counter}`, { params: {}, version: null });
      await store.ensureShards(instance, ['main'], { version: null });
      const lease = await store.claim(instance, 'worker-1', leaseMs);
      assert.ok(lease);
      return { instance, lease, scope: { instanceId: instance.id, generation: instance.generation } };
    }

    const event = (type: string, key: string) => ({ type, at: Date.now(), runId: null, shard: 'main', data: { key } });
    /** An event the caller did not date: the store dates it when it links it, once. */
    const undated = (type: string, key: string) => ({ type, runId: null, shard: 'main', data: { key } });

    test('the usual batch (claims, completions, events, fenced) commits in one round trip from a URL, one statement each from a pool', async () => {
      const store = await open();
      const { instance, lease, scope } = await claimed(store);
      const fence = fenceOf(lease);
      // The first batch of this process on the instance goes the locked way and caches the head;
      // the second is a usual one, whose connection is new (the pool's first statement on it).
      await store.journal(instance.id, [{ kind: 'claim', scope, key: 'a', events: [event('effect:start', 'a')] }], fence);
      await store.journal(instance.id, [{ kind: 'events', scope, events: [undated('effect:in-doubt', 'none')] }], fence);
      const batch: JournalWrite[] = [
        { kind: 'done', scope, key: 'a', result: { ok: 1 }, events: [event('effect:done', 'a')] },
        { kind: 'claim', scope, key: 'b', events: [event('effect:start', 'b')] },
        { kind: 'claim', scope, key: 'c', events: [event('effect:start', 'c')] },
      ];
      const { result, trips: used } = await counted(() => store.journal(instance.id, batch, fence));
      assert.deepEqual(result, [undefined, undefined, undefined]);
      // From a URL: the whole transaction at once. From a pool: wait_timeout, START, the locking
      // read of the shard and the head with its check, two effect inserts, the events, the
      // head's move, COMMIT, wait_timeout back.
      assert.equal(used, kind === 'url' ? 1 : 9);
      assert.deepEqual((await store.effect(scope, 'a'))?.result, { ok: 1 });
      assert.equal((await store.effect(scope, 'c'))?.status, 'intent');
      const chain = await readChain(store, instance.id);
      assert.equal(verifyChain(chain.events, chain.head, undefined).ok, true, 'the chain is intact, an undated event included');
      assert.deepEqual(
        chain.events.map((stored) => [stored.type, stored.data.key]),
        [
          ['effect:start', 'a'],
          ['effect:in-doubt', 'none'],
          ['effect:done', 'a'],
          ['effect:start', 'b'],
          ['effect:start', 'c'],
        ],
      );
    });

    test('a claim that finds an entry, a head another process moved and a stale lease each roll the usual way back for the locked one', async () => {
      const store = await open();
      const other = await open();
      const { instance, lease, scope } = await claimed(store, 1_000);
      await store.journal(instance.id, [{ kind: 'done', scope, key: 'paid', result: 7, events: [event('effect:done', 'paid')] }], fenceOf(lease));
      // A claim of a done key: the usual way's plain insert hits it; the locked way answers the entry.
      const [paid, fresh] = await store.journal(
        instance.id,
        [
          { kind: 'claim', scope, key: 'paid', events: [event('effect:start', 'paid')] },
          { kind: 'claim', scope, key: 'fresh', events: [event('effect:start', 'fresh')] },
        ],
        fenceOf(lease),
      );
      assert.deepEqual([(paid as EffectEntry | undefined)?.status, (paid as EffectEntry | undefined)?.result, fresh], ['done', 7, undefined]);
      // Another process appends to the chain: this one's cached head is stale.
      await other.journal(instance.id, [{ kind: 'claim', scope, key: 'theirs', events: [event('effect:start', 'theirs')] }]);
      assert.deepEqual(await store.journal(instance.id, [{ kind: 'claim', scope, key: 'mine', events: [event('effect:start', 'mine')] }], fenceOf(lease)), [
        undefined,
      ]);
      // The shard taken over: a claim under the old lease is refused, and writes nothing.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const holder = await other.claim(instance, 'worker-2', 30_000);
      assert.ok(holder && holder.token !== lease.token);
      const [refused] = await store.journal(instance.id, [{ kind: 'claim', scope, key: 'late', events: [event('effect:start', 'late')] }], fenceOf(lease));
      assert.deepEqual(refused, { fenced: 'refused', holderRunId: holder.runId });
      assert.equal(await store.effect(scope, 'late'), undefined);
      const chain = await readChain(store, instance.id);
      assert.equal(verifyChain(chain.events, chain.head, undefined).ok, true, 'the chain is intact');
      assert.deepEqual(
        chain.events.map((stored) => stored.data.key),
        ['paid', 'fresh', 'theirs', 'mine'],
        'a refused claim records nothing; every batch linked from the head it found',
      );
    });

    test('a batch connection is bounded when made, and one idle past the bound is closed, not handed out', { skip: kind === 'pool' }, async () => {
      const driver = new MysqlDriver({ url: database.url, database: database.name });
      try {
        const first = await driver.batchConnection();
        assert.ok(first);
        const [rows] = await first.query('SELECT @@SESSION.wait_timeout AS bound');
        assert.deepEqual(rows, [{ bound: 5 }], 'a frozen client cannot keep a failed batch open past 5 s');
        driver.giveBackBatch(first, true);
        assert.equal(await driver.batchConnection(), first, 'a connection idle a moment is handed out again');
        driver.giveBackBatch(first, true);
        // Past the server's bound the session is gone; the driver never tries it.
        await new Promise((resolve) => setTimeout(resolve, 5_500));
        const next = await driver.batchConnection();
        assert.ok(next && next !== first);
        await next.query('SELECT 1');
        driver.giveBackBatch(next, true);
      } finally {
        await driver.close();
      }
    });
  });
}
