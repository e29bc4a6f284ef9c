// The Store contract, run against every backend (CKPT_TEST_STORES selects them). A backend that
// passes this suite can carry checkpoints: leases fence, checkpoints verify and never go back.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FencedError } from '../src/index.ts';
import type { InstanceInfo, Lease, Store, Tx } from '../src/store.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

for (const factory of selectedStoreFactories()) {
  describe(`Store contract: ${factory.name}`, { skip: await factory.skip?.() }, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    let exec: ((sql: string) => Promise<void>) | undefined;
    let counter = 0;
    before(async () => {
      ({ store, dispose, exec } = await factory.create());
    });
    /** DDL for a test table: through the tx where DDL is transactional, else beside the store. */
    const ddl = async (tx: Tx, sql: string) => {
      await (exec ? exec(sql) : tx.sql?.query(sql));
    };
    after(async () => {
      await dispose();
    });

    /** A fresh instance with the given shards, so tests never share state. */
    async function freshInstance(shards: string[] = ['main']): Promise<InstanceInfo> {
      counter++;
      const instance = await store.instance(`job-${counter}`, `hash-${counter}`, { params: { n: counter }, version: null });
      await store.ensureShards(instance, shards, { version: null });
      return instance;
    }

    test('migrate is idempotent', async () => {
      await store.migrate();
      await store.migrate();
    });

    test('instance is found by (job, params hash), not duplicated', async () => {
      const a = await store.instance('import', 'h1', { params: { day: '1' }, version: 'v1' });
      const again = await store.instance('import', 'h1', { params: { day: '1' }, version: 'v1' });
      const other = await store.instance('import', 'h2', { params: { day: '2' }, version: 'v1' });
      assert.equal(again.id, a.id);
      assert.notEqual(other.id, a.id);
      assert.equal(a.generation, 1);
      assert.equal(a.status, 'open');
      assert.deepEqual(a.params, { day: '1' });
      const listed = await store.listInstances('import');
      assert.deepEqual(listed.map((instance) => instance.id).sort(), [a.id, other.id].sort());
    });

    test('ensureShards is idempotent and per generation', async () => {
      const instance = await freshInstance(['a', 'b']);
      await store.ensureShards(instance, ['a', 'b'], { version: null });
      assert.deepEqual(
        (await store.listShards(instance.id)).map((shard) => shard.name),
        ['a', 'b'],
      );
      const next = await store.resetInstance(instance.id);
      assert.equal(next.generation, 2);
      assert.deepEqual(await store.listShards(instance.id), []);
      await store.ensureShards(next, ['a'], { version: null });
      assert.deepEqual(
        (await store.listShards(instance.id)).map((shard) => [shard.name, shard.generation]),
        [['a', 2]],
      );
    });

    test('resetInstance from a generation: two at the same moment start one new generation', async () => {
      const instance = await freshInstance();
      const first = await store.resetInstance(instance.id, instance.generation);
      const second = await store.resetInstance(instance.id, instance.generation);
      assert.equal(first.generation, instance.generation + 1);
      assert.equal(second.generation, instance.generation + 1, 'the second finds the generation moved on and leaves it');
    });

    test('resetInstance with carry: each completed shard starts the new generation at its last checkpoint, count 0', async () => {
      const instance = await freshInstance(['a', 'b']);
      for (const position of [['k', 7], null]) {
        const lease = await store.claim(instance, 'w1', 60_000);
        assert.ok(lease);
        await store.setInputs(lease, { fingerprint: `fp-${lease.shard}`, version: null, paramsHash: 'h' });
        const tx = await store.begin(lease);
        // Shard a completes at ['k', 7]; shard b is left unfinished and is not carried.
        if (position === null) {
          await store.commit(tx, { position: 3, state: { n: 3 }, processed: 3 }, {});
          break;
        }
        await store.commit(tx, { position, state: { high: 'k7' }, processed: 9 }, { complete: true });
      }
      const next = await store.resetInstance(instance.id, instance.generation, { carry: true });
      assert.equal(next.generation, instance.generation + 1);
      const shards = await store.listShards(instance.id);
      assert.deepEqual(
        shards.map((shard) => [shard.name, shard.generation, shard.status, shard.processed, shard.fingerprint]),
        [['a', next.generation, 'pending', 0, 'fp-a']],
      );
      await store.ensureShards(next, ['a', 'b'], { version: null });
      const lease = await store.claim(next, 'w2', 60_000);
      assert.equal(lease?.shard, 'a');
      const { checkpoint } = await store.latest(lease as Lease);
      assert.deepEqual(
        { position: checkpoint?.position, state: checkpoint?.state, processed: checkpoint?.processed },
        { position: ['k', 7], state: { high: 'k7' }, processed: 0 },
      );
      const other = await store.claim(next, 'w3', 60_000);
      assert.equal((await store.latest(other as Lease)).checkpoint, undefined, 'shard b starts from the beginning');
    });

    test('a held shard cannot be claimed twice; holders name the worker', async () => {
      const instance = await freshInstance();
      const lease = await store.claim(instance, 'w1', 60_000);
      assert.ok(lease);
      assert.equal(lease.token, 1);
      assert.equal(await store.claim(instance, 'w2', 60_000), null);
      const holders = await store.holders(instance.id);
      assert.deepEqual(
        holders.map((holder) => [holder.shard, holder.worker]),
        [['main', 'w1']],
      );
    });

    test('leaseShard takes a shard outside any run: never while a lease holds it; it fences the run it took it from and keeps runs off until released', async () => {
      const instance = await freshInstance();
      const shard = (await store.listShards(instance.id))[0];
      assert.ok(shard);
      const held = await store.claim(instance, 'w1', 60_000);
      assert.ok(held);
      assert.equal(await store.leaseShard(instance, shard, 'retry', 60_000), null, 'not while a run holds the shard');
      await store.release(held, 'interrupted', {});

      const paused = await store.claim(instance, 'paused', 1);
      assert.ok(paused);
      await sleep(10);
      const outside = await store.leaseShard(instance, shard, 'retry', 60_000);
      assert.ok(outside);
      assert.equal(outside.runId, 0);
      assert.ok(outside.token > paused.token);
      assert.equal(await store.liveRunOrFence(paused.runId), undefined, 'the run it took the shard from is not live');
      assert.equal(await store.heartbeat(paused, {}), false, 'and is fenced');
      assert.equal(await store.claim(instance, 'w2', 60_000), null, 'no run claims it meanwhile');
      assert.equal(await store.leaseShard(instance, shard, 'retry-2', 60_000), null, 'nor another lease');
      const reaped = await store.reapCrashed(instance.id, () => true);
      assert.deepEqual(
        reaped.map((run) => run.worker),
        ['paused'],
        'the run it took the shard from is crashed…',
      );
      assert.equal(await store.heartbeat(outside, {}), true, '…and its reaping leaves the lease taken outside it');
      assert.deepEqual(
        (await store.holders(instance.id)).map((holder) => [holder.worker, holder.node]),
        [['retry', null]],
      );
      await store.release(outside, 'completed', {});
      assert.deepEqual((await store.listRuns(instance.id)).map((run) => run.worker).sort(), ['paused', 'w1'], 'a lease outside any run writes no run');
      assert.equal((await store.listShards(instance.id))[0]?.status, 'pending', 'its status unchanged');
      assert.ok(await store.claim(instance, 'w2', 60_000), 'released: a run claims it');
    });

    test('checkpoints commit in order, verify, and keep the newest', async () => {
      const instance = await freshInstance();
      const lease = await store.claim(instance, 'w1', 60_000);
      assert.ok(lease);
      assert.equal((await store.latest(lease)).checkpoint, undefined);
      for (let i = 1; i <= 7; i++) {
        const tx = await store.begin(lease);
        const saved = await store.commit(tx, { position: i * 10, state: { sum: i }, processed: i }, { processed: i });
        assert.equal(saved.seq, i);
      }
      const latest = await store.latest(lease);
      assert.deepEqual(latest.corrupt, []);
      assert.equal(latest.checkpoint?.seq, 7);
      assert.equal(latest.checkpoint?.position, 70);
      assert.deepEqual(latest.checkpoint?.state, { sum: 7 });
      assert.equal((await store.listShards(instance.id))[0]?.processed, 7);
    });

    test('a stale fencing token can neither checkpoint nor heartbeat', async () => {
      const instance = await freshInstance();
      const zombie = await store.claim(instance, 'zombie', 1);
      assert.ok(zombie);
      const zombieTx = await store.begin(zombie);
      await sleep(10);
      const fresh = await store.claim(instance, 'fresh', 60_000);
      assert.ok(fresh);
      assert.ok(fresh.token > zombie.token);
      await assert.rejects(store.commit(zombieTx, { position: 99, state: {}, processed: 99 }, {}), FencedError);
      assert.equal(await store.heartbeat(zombie, {}), false);
      assert.equal(await store.heartbeat(fresh, {}), true);
      assert.equal((await store.latest(fresh)).checkpoint, undefined);
      const runs = await store.listRuns(instance.id);
      assert.equal(runs.find((run) => run.worker === 'zombie')?.outcome, 'crashed');
    });

    test('completing every shard completes the instance', async () => {
      const instance = await freshInstance(['a', 'b']);
      for (let i = 0; i < 2; i++) {
        assert.equal(await store.completeIfDone(instance.id, instance.generation), false);
        const lease = await store.claim(instance, 'w1', 60_000);
        assert.ok(lease);
        const tx = await store.begin(lease);
        await store.commit(tx, { position: 1, state: {}, processed: 1 }, { complete: true });
      }
      assert.equal(await store.claim(instance, 'w1', 60_000), null);
      assert.equal(await store.completeIfDone(instance.id, instance.generation), 'now');
      // Exactly one call completes it (and so records the completion); the others find it done.
      assert.equal(await store.completeIfDone(instance.id, instance.generation), 'before');
      const [latest] = await store.listInstances(instance.job);
      assert.equal(latest?.status, 'completed');
      const status = await store.status(instance.id);
      assert.deepEqual(status.shards, { total: 2, completed: 2, running: 0 });
      assert.equal(status.processed, 2);
    });

    test('release frees the shard and records the outcome; previousRun finds it', async () => {
      const instance = await freshInstance();
      const first = await store.claim(instance, 'w1', 60_000);
      assert.ok(first);
      await store.release(first, 'interrupted', { processed: 5 });
      const second = await store.claim(instance, 'w2', 60_000);
      assert.ok(second);
      const previous = await store.previousRun(second);
      assert.equal(previous?.id, first.runId);
      assert.equal(previous?.outcome, 'interrupted');
      assert.equal(previous?.processed, 5);
    });

    test('reapCrashed marks dead workers crashed and frees their shards', async () => {
      const instance = await freshInstance();
      const lease = await store.claim(instance, 'dead-worker', 60_000);
      assert.ok(lease);
      await store.heartbeat(lease, { markProcessed: 42 });
      assert.deepEqual(await store.reapCrashed(instance.id, () => false), []);
      const reaped = await store.reapCrashed(instance.id, (worker) => worker === 'dead-worker');
      assert.equal(reaped.length, 1);
      assert.equal(reaped[0]?.outcome, 'crashed');
      assert.equal(reaped[0]?.markProcessed, 42);
      assert.deepEqual(await store.holders(instance.id), []);
      assert.ok(await store.claim(instance, 'w2', 60_000));
    });

    test('a claim records where its worker runs (its node); holders and reapCrashed hand it back, so isDead judges the node, not the label', async () => {
      const instance = await freshInstance(['a', 'b']);
      const here = await store.claim(instance, 'node-a:43', 60_000, 'linux/boot-1/ns-1/43/100');
      const old = await store.claim(instance, 'node-a:44', 60_000);
      assert.ok(here && old);
      assert.deepEqual(
        (await store.holders(instance.id)).map((holder) => [holder.worker, holder.node]),
        [
          ['node-a:43', 'linux/boot-1/ns-1/43/100'],
          ['node-a:44', null],
        ],
      );
      const asked: [string, string | null][] = [];
      const reaped = await store.reapCrashed(instance.id, (worker, node) => {
        asked.push([worker, node]);
        return node === 'linux/boot-1/ns-1/43/100';
      });
      assert.deepEqual(asked.sort(), [
        ['node-a:43', 'linux/boot-1/ns-1/43/100'],
        ['node-a:44', null],
      ]);
      assert.deepEqual(
        reaped.map((run) => [run.worker, run.node]),
        [['node-a:43', 'linux/boot-1/ns-1/43/100']],
      );
    });

    test('a progress mark survives the job transaction it was written beside; an exact one reaps as interrupted', async () => {
      const instance = await freshInstance(['a', 'b']);
      const crashed = await store.claim(instance, 'dead-a', 60_000);
      assert.ok(crashed);
      // The job's transaction is open (and, on SQLite, holds the file): the mark must not wait for it or die with it.
      const tx = await store.begin(crashed);
      await tx.savepoint('ckpt_record');
      await store.markProgress(crashed, { ceiling: 40, step: 16 });
      await store.markProgress(crashed, { ceiling: 56, step: 16 });
      await store.rollback(tx);
      const stopped = await store.claim(instance, 'dead-b', 60_000);
      assert.ok(stopped);
      await store.markProgress(stopped, { ceiling: 7, step: 0 });
      const reaped = await store.reapCrashed(instance.id, (worker) => worker.startsWith('dead-'));
      const byShard = Object.fromEntries(reaped.map((run) => [run.shard, [run.outcome, run.markCeiling, run.markStep]]));
      assert.deepEqual(byShard, { a: ['crashed', 56, 16], b: ['interrupted', 7, 0] });
    });

    test('an expired lease is reaped without any help from isDead', async () => {
      const instance = await freshInstance();
      assert.ok(await store.claim(instance, 'slow', 1));
      await sleep(10);
      const reaped = await store.reapCrashed(instance.id, () => false);
      assert.deepEqual(
        reaped.map((run) => run.worker),
        ['slow'],
      );
    });

    test('events are appended and read back in order', async () => {
      const instance = await freshInstance();
      await store.appendEvents(instance.id, instance.generation, [
        { type: 'run:start', shard: 'main', data: { n: 1 } },
        { type: 'run:end', shard: 'main', data: { n: 2 } },
      ]);
      const events = await store.listEvents(instance.id);
      assert.deepEqual(
        events.map((event) => [event.type, event.data.n]),
        [
          ['run:start', 1],
          ['run:end', 2],
        ],
      );
      const later = await store.listEvents(instance.id, { afterId: events[0]?.id ?? 0 });
      assert.deepEqual(
        later.map((event) => event.type),
        ['run:end'],
      );
    });

    if (factory.param) {
      const p = factory.param;
      test('ctx.tx writes commit with the checkpoint and roll back without it', async () => {
        const instance = await freshInstance();
        const lease = await store.claim(instance, 'w1', 60_000);
        assert.ok(lease);
        const table = `out_${counter}`;
        let tx = await store.begin(lease);
        await ddl(tx, `CREATE TABLE ${table} (n INTEGER PRIMARY KEY)`);
        await tx.sql?.query(`INSERT INTO ${table} (n) VALUES (${p(1)})`, [1]);
        await store.commit(tx, { position: 1, state: {}, processed: 1 }, {});
        tx = await store.begin(lease);
        await tx.sql?.query(`INSERT INTO ${table} (n) VALUES (${p(1)})`, [2]);
        await tx.savepoint('record');
        await tx.sql?.query(`INSERT INTO ${table} (n) VALUES (${p(1)})`, [3]);
        await tx.rollbackToSavepoint('record');
        await store.rollback(tx);
        tx = await store.begin(lease);
        const { rows } = (await tx.sql?.query<{ n: number }>(`SELECT n FROM ${table} ORDER BY n`)) ?? { rows: [] };
        assert.deepEqual(
          rows.map((row) => Number(row.n)),
          [1],
        );
        await store.rollback(tx);
      });

      test("a fenced commit rejects the zombie's ctx.tx writes with its checkpoint", async () => {
        const instance = await freshInstance();
        const table = `fenced_${counter}`;
        const zombie = await store.claim(instance, 'zombie', 1);
        assert.ok(zombie);
        let setup = await store.begin(zombie);
        await ddl(setup, `CREATE TABLE ${table} (n INTEGER NOT NULL)`);
        await store.commit(setup, { position: 0, state: {}, processed: 1 }, {});
        await sleep(10);
        const fresh = await store.claim(instance, 'fresh', 60_000);
        assert.ok(fresh);
        // The zombie wakes up and writes as if it still held the shard.
        const zombieTx = await store.begin(zombie);
        await zombieTx.sql?.query(`INSERT INTO ${table} (n) VALUES (${p(1)})`, [1]);
        await assert.rejects(store.commit(zombieTx, { position: 1, state: {}, processed: 2 }, {}), FencedError);
        const freshTx = await store.begin(fresh);
        await freshTx.sql?.query(`INSERT INTO ${table} (n) VALUES (${p(1)})`, [2]);
        const saved = await store.commit(freshTx, { position: 1, state: {}, processed: 2 }, {});
        assert.equal(saved.seq, 2, 'the checkpoint sequence goes on from the last good one');
        setup = await store.begin(fresh);
        const { rows } = (await setup.sql?.query<{ n: number }>(`SELECT n FROM ${table} ORDER BY n`)) ?? { rows: [] };
        await store.rollback(setup);
        assert.deepEqual(
          rows.map((row) => Number(row.n)),
          [2],
          "only the live worker's write is there",
        );
      });
    }

    test('a closed store refuses further use', async () => {
      const { store: other, dispose: disposeOther } = await factory.create();
      await other.close();
      await assert.rejects(other.listInstances());
      await disposeOther();
    });
  });
}
