// The Store contract for issue 3 (effect journal, dead letters, shard inputs), run against every
// backend (CKPT_TEST_STORES selects them), like test/store-contract.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InstanceInfo, Lease, Store } from '../src/index.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

for (const factory of selectedStoreFactories()) {
  describe(`Store contract, effects and dead letters: ${factory.name}`, { skip: await factory.skip?.() }, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    let counter = 0;
    before(async () => {
      ({ store, dispose } = await factory.create());
    });
    after(async () => {
      await dispose();
    });

    async function claimed(): Promise<{ instance: InstanceInfo; lease: Lease }> {
      counter++;
      const instance = await store.instance(`fx-${counter}`, `hash-${counter}`, { params: {}, version: null });
      await store.ensureShards(instance, ['main'], { version: null });
      const lease = await store.claim(instance, 'worker-1', 30_000);
      assert.ok(lease);
      return { instance, lease };
    }

    test('effect journal: intent, done with its result, failed forgets only an intent', async () => {
      const { instance } = await claimed();
      const scope = { instanceId: instance.id, generation: instance.generation };
      assert.equal(await store.effect(scope, 'k'), undefined);
      await store.effectIntent(scope, 'k');
      assert.equal((await store.effect(scope, 'k'))?.status, 'intent');
      await store.effectIntent(scope, 'k');
      assert.equal((await store.effect(scope, 'k'))?.attempts, 2, 'each start of fn is counted');
      await store.effectDone(scope, 'k', { sent: true });
      const done = await store.effect(scope, 'k');
      assert.equal(done?.status, 'done');
      assert.deepEqual(done?.result, { sent: true });
      await store.effectFailed(scope, 'k');
      assert.equal((await store.effect(scope, 'k'))?.status, 'done', 'a done key is never forgotten');
      await store.effectIntent(scope, 'other');
      await store.effectFailed(scope, 'other');
      assert.equal(await store.effect(scope, 'other'), undefined);
      assert.equal(await store.effect({ ...scope, generation: scope.generation + 1 }, 'k'), undefined, 'one journal per generation');
    });

    test('an intent is durable at once, even while the shard transaction is open and then rolled back', async () => {
      const { instance, lease } = await claimed();
      const scope = { instanceId: instance.id, generation: instance.generation };
      const tx = await store.begin(lease);
      // Any statement opens the transaction (SQLite: BEGIN IMMEDIATE takes the file's write lock).
      if (tx.sql) await tx.sql.query('SELECT 1');
      await store.effectIntent(scope, 'revoke');
      await store.effectDone(scope, 'revoke', null);
      await store.rollback(tx);
      assert.equal((await store.effect(scope, 'revoke'))?.status, 'done');
    });

    test('dead letters land with the commit of their tx, or never', async () => {
      const { instance, lease } = await claimed();
      const letter = { position: 7, record: { id: 7 }, error: 'poison', attempts: 3 };
      let tx = await store.begin(lease);
      await store.addDeadLetter(tx, letter);
      await store.rollback(tx);
      assert.equal(await store.countDeadLetters(lease), 0);
      tx = await store.begin(lease);
      await store.addDeadLetter(tx, letter);
      await store.commit(tx, { position: 7, state: {}, processed: 8 }, {});
      assert.equal(await store.countDeadLetters(lease), 1);
      const [listed] = await store.listDeadLetters(instance.id);
      assert.deepEqual(
        { shard: listed?.shard, position: listed?.position, record: listed?.record, error: listed?.error, attempts: listed?.attempts },
        { shard: 'main', position: 7, record: { id: 7 }, error: 'poison', attempts: 3 },
      );
      await store.noteDeadLetterRetry(listed?.id ?? 0, 'still poison');
      assert.deepEqual(
        (await store.listDeadLetters(instance.id)).map((row) => [row.error, row.attempts]),
        [['still poison', 4]],
      );
      tx = await store.begin(lease);
      assert.equal(await store.resolveDeadLetter(tx, listed?.id ?? 0), true);
      assert.deepEqual(await store.listDeadLetters(instance.id), []);
      // Already resolved (by another process's retry): false, and the tx is over.
      tx = await store.begin(lease);
      assert.equal(await store.resolveDeadLetter(tx, listed?.id ?? 0), false);
      await assert.rejects(store.commit(tx, { position: 8, state: {}, processed: 9 }, {}));
      // A new letter never takes the id of a removed one, so a late retry of that id cannot remove it.
      tx = await store.begin(lease);
      await store.addDeadLetter(tx, { ...letter, position: 9 });
      await store.commit(tx, { position: 9, state: {}, processed: 10 }, {});
      const [newer] = await store.listDeadLetters(instance.id);
      assert.notEqual(newer?.id, listed?.id);
      tx = await store.begin(lease);
      assert.equal(await store.resolveDeadLetter(tx, listed?.id ?? 0), false);
      assert.equal((await store.listDeadLetters(instance.id)).length, 1);
    });

    test('setInputs records fingerprint, version and params hash, fenced by the token', async () => {
      const { instance, lease } = await claimed();
      await store.setInputs(lease, { fingerprint: 'fp-1', version: 'v2', paramsHash: 'p-1' });
      const [shard] = await store.listShards(instance.id);
      assert.deepEqual([shard?.fingerprint, shard?.version, shard?.paramsHash], ['fp-1', 'v2', 'p-1']);
      await store.setInputs({ ...lease, token: lease.token - 1 }, { fingerprint: 'stale', version: null, paramsHash: 'x' });
      assert.equal((await store.listShards(instance.id))[0]?.fingerprint, 'fp-1');
    });
  });
}
