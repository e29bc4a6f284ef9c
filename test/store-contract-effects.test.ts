// The Store contract for effects (effect journal, dead letters, shard inputs), run against every
// backend (CKPT_TEST_STORES selects them), like test/store-contract.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { EffectEntry, InstanceInfo, Lease, Store } from '../src/store.ts';
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

    test('journal batch: a claim writes an intent and its events only for a key with no entry, and answers the entry otherwise', async () => {
      const { instance } = await claimed();
      const scope = { instanceId: instance.id, generation: instance.generation };
      const instanceScope = { instanceId: instance.id, generation: 0 };
      const event = (type: string, key: string) => ({ type, runId: null, shard: 'main', data: { key } });
      await store.effectDone(scope, 'paid', { receipt: 7 }, [event('effect:done', 'paid')]);
      await store.effectIntent(scope, 'doubt', [event('effect:start', 'doubt')]);
      const before = (await store.listEvents(instance.id)).length;
      const outcomes = await store.journal(instance.id, [
        { kind: 'claim', scope, key: 'new', events: [event('effect:start', 'new')] },
        { kind: 'claim', scope, key: 'paid', events: [event('effect:start', 'paid')] },
        { kind: 'claim', scope: instanceScope, key: 'once-ever', events: [event('effect:start', 'once-ever')] },
        { kind: 'claim', scope, key: 'doubt', events: [event('effect:start', 'doubt')] },
        { kind: 'done', scope, key: 'other', result: 'r', events: [event('effect:done', 'other')] },
        { kind: 'events', scope, events: [event('effect:in-doubt', 'x')] },
      ]);
      assert.equal(outcomes.length, 6);
      assert.equal(outcomes[0], undefined, 'a new key is claimed');
      assert.deepEqual([(outcomes[1] as EffectEntry)?.status, (outcomes[1] as EffectEntry)?.result], ['done', { receipt: 7 }], 'a done key answers its result');
      assert.equal(outcomes[2], undefined, 'an instance-scoped key is claimed in generation 0');
      assert.deepEqual([(outcomes[3] as EffectEntry)?.status, (outcomes[3] as EffectEntry)?.attempts], ['intent', 1], 'a key in doubt answers its intent');
      assert.deepEqual([outcomes[4], outcomes[5]], [undefined, undefined]);
      assert.deepEqual([(await store.effect(scope, 'new'))?.status, (await store.effect(scope, 'new'))?.attempts], ['intent', 1]);
      assert.equal((await store.effect(instanceScope, 'once-ever'))?.status, 'intent');
      assert.equal(await store.effect(scope, 'once-ever'), undefined, 'generation 0 is its own journal');
      assert.deepEqual((await store.effect(scope, 'paid'))?.result, { receipt: 7 }, 'a refused claim leaves the entry as it was');
      assert.equal((await store.effect(scope, 'doubt'))?.attempts, 1);
      assert.equal((await store.effect(scope, 'other'))?.status, 'done');
      const added = (await store.listEvents(instance.id)).slice(before);
      assert.deepEqual(
        added.map((stored) => [stored.type, stored.data.key, stored.generation]),
        [
          ['effect:start', 'new', scope.generation],
          ['effect:start', 'once-ever', 0],
          ['effect:done', 'other', scope.generation],
          ['effect:in-doubt', 'x', scope.generation],
        ],
        "refused claims record nothing; the batch's events are one append, in the writes' order, each under its write's generation",
      );
      const seqs = (await store.listEvents(instance.id)).map((stored) => stored.chain?.seq);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => i + 1),
        'one chain for both generations',
      );
      assert.equal((await store.chainHead(instance.id))?.seq, seqs.length);
    });

    test('journal batch under a stale fencing token: starts are refused, a completion never overwrites another, late ones are recorded', async () => {
      counter++;
      const instance = await store.instance(`fx-${counter}`, `hash-${counter}`, { params: {}, version: null });
      await store.ensureShards(instance, ['main'], { version: null });
      const stale = await store.claim(instance, 'worker-a', 1);
      assert.ok(stale);
      await new Promise((resolve) => setTimeout(resolve, 30));
      const holder = await store.claim(instance, 'worker-b', 30_000);
      assert.ok(holder && holder.token !== stale.token, 'the shard was taken over');
      const fence = (lease: Lease) => ({ shardId: lease.shardId, token: lease.token, shard: lease.shard, runId: lease.runId });
      const scope = { instanceId: instance.id, generation: instance.generation };
      const event = (type: string, key: string) => ({ type, runId: stale.runId, shard: 'main', data: { key } });
      // The holder redid one effect and is running another.
      assert.deepEqual(
        await store.journal(
          instance.id,
          [
            { kind: 'done', scope, key: 'redone', result: { by: 'holder' }, events: [] },
            { kind: 'claim', scope, key: 'running', events: [] },
          ],
          fence(holder),
        ),
        [undefined, undefined],
        'a current token writes as usual',
      );
      const before = (await store.listEvents(instance.id)).length;
      const outcomes = await store.journal(
        instance.id,
        [
          { kind: 'claim', scope, key: 'new', events: [event('effect:start', 'new')] },
          { kind: 'intent', scope, key: 'again', events: [event('effect:start', 'again')] },
          { kind: 'done', scope, key: 'redone', result: { by: 'stale' }, events: [event('effect:done', 'redone')] },
          { kind: 'done', scope, key: 'running', result: { by: 'stale' }, events: [event('effect:done', 'running')] },
          { kind: 'events', scope, events: [event('effect:in-doubt', 'x')] },
        ],
        fence(stale),
      );
      assert.deepEqual(outcomes, [
        { fenced: 'refused', holderRunId: holder.runId },
        { fenced: 'refused', holderRunId: holder.runId },
        { fenced: 'late', holderRunId: holder.runId, kept: 'first' },
        { fenced: 'late', holderRunId: holder.runId, kept: 'late' },
        undefined,
      ]);
      assert.equal(await store.effect(scope, 'new'), undefined, 'a refused claim writes no intent');
      assert.equal(await store.effect(scope, 'again'), undefined, 'a refused intent writes none');
      assert.deepEqual((await store.effect(scope, 'redone'))?.result, { by: 'holder' }, 'the first result stays');
      assert.deepEqual((await store.effect(scope, 'running'))?.result, { by: 'stale' }, 'a late completion over an intent is recorded: the effect did happen');
      const added = (await store.listEvents(instance.id)).slice(before).map((stored) => [stored.type, stored.data.key, stored.data.kept ?? null, stored.runId]);
      assert.deepEqual(added, [
        ['effect:late-completion', 'redone', 'first', stale.runId],
        ['effect:done', 'running', null, stale.runId],
        ['effect:late-completion', 'running', 'late', stale.runId],
        ['effect:in-doubt', 'x', null, stale.runId],
      ]);
      const late = (await store.listEvents(instance.id)).find((stored) => stored.type === 'effect:late-completion');
      assert.deepEqual(late?.data, { shard: 'main', key: 'redone', runId: stale.runId, holderRunId: holder.runId, kept: 'first' });
      // A batch a store could write the quick way (claims and completions only) is fenced too.
      assert.deepEqual(
        await store.journal(
          instance.id,
          [
            { kind: 'claim', scope, key: 'new', events: [] },
            { kind: 'done', scope, key: 'redone', result: { by: 'stale' }, events: [] },
          ],
          fence(stale),
        ),
        [
          { fenced: 'refused', holderRunId: holder.runId },
          { fenced: 'late', holderRunId: holder.runId, kept: 'first' },
        ],
      );
      assert.deepEqual((await store.effect(scope, 'redone'))?.result, { by: 'holder' });
      // The holder's own completion, with a current token, is the one that counts.
      await store.journal(instance.id, [{ kind: 'done', scope, key: 'running', result: { by: 'holder' }, events: [] }], fence(holder));
      assert.deepEqual((await store.effect(scope, 'running'))?.result, { by: 'holder' });
    });

    test("a claim or an intent records the run that wrote it; liveRunOrFence answers while that run holds its shard's lease", async () => {
      const { instance, lease } = await claimed();
      const scope = { instanceId: instance.id, generation: instance.generation };
      await store.journal(instance.id, [
        { kind: 'claim', scope, key: 'mine', events: [], runId: lease.runId },
        { kind: 'claim', scope, key: 'nobody', events: [] },
      ]);
      assert.equal((await store.effect(scope, 'mine'))?.runId, lease.runId);
      assert.equal((await store.effect(scope, 'nobody'))?.runId, null, 'a write of no run records none');
      await store.journal(instance.id, [{ kind: 'intent', scope, key: 'nobody', events: [], runId: lease.runId + 1000 }]);
      const again = await store.effect(scope, 'nobody');
      assert.equal(again?.runId, lease.runId + 1000, 'a new intent records its own writer');
      assert.equal(again?.attempts, 2);
      await store.journal(instance.id, [{ kind: 'done', scope, key: 'mine', result: 1, events: [] }]);
      assert.equal((await store.effect(scope, 'mine'))?.status, 'done');

      const live = await store.liveRunOrFence(lease.runId);
      assert.deepEqual({ runId: live?.runId, shard: live?.shard, worker: live?.worker }, { runId: lease.runId, shard: 'main', worker: 'worker-1' });
      assert.ok(await store.heartbeat(lease, {}), 'a live lease is left as it was');
      assert.equal(await store.liveRunOrFence(lease.runId + 1000), undefined, 'no such run');
      await store.release(lease, 'completed', {});
      assert.equal(await store.liveRunOrFence(lease.runId), undefined, 'a run that ended holds nothing');
    });

    test('an intent written over an in-doubt entry is written only while the key still has that entry', async () => {
      const { instance, lease } = await claimed();
      const scope = { instanceId: instance.id, generation: instance.generation };
      const dead = lease.runId + 1000;
      await store.journal(instance.id, [{ kind: 'claim', scope, key: 'k', events: [], runId: dead }]);
      const seen = { attempts: 1, runId: dead };
      const event = (by: string) => ({ type: 'effect:start', at: Date.now(), runId: lease.runId, shard: 'main', data: { shard: 'main', key: 'k', by } });
      const before = (await store.listEvents(instance.id)).length;
      const [first] = await store.journal(instance.id, [{ kind: 'intent', scope, key: 'k', events: [event('first')], runId: lease.runId, over: seen }]);
      assert.equal(first, undefined, 'the first to settle it starts it over');
      // A second run that read the same in-doubt entry: the key moved, so nothing of its write stays.
      const [second, other] = await store.journal(instance.id, [
        { kind: 'intent', scope, key: 'k', events: [event('second')], runId: lease.runId + 1, over: seen },
        { kind: 'claim', scope, key: 'other', events: [], runId: lease.runId + 1 },
      ]);
      assert.ok(second !== undefined && 'status' in second, 'answered with the entry the key has now');
      assert.deepEqual({ status: second.status, attempts: second.attempts, runId: second.runId }, { status: 'intent', attempts: 2, runId: lease.runId });
      assert.equal(other, undefined, 'the rest of its batch is written');
      const entry = await store.effect(scope, 'k');
      assert.deepEqual({ attempts: entry?.attempts, runId: entry?.runId }, { attempts: 2, runId: lease.runId });
      const events = (await store.listEvents(instance.id)).slice(before).map((stored) => stored.data.by);
      assert.deepEqual(events, ['first'], 'the refused write recorded no event');
      await store.journal(instance.id, [{ kind: 'done', scope, key: 'k', result: 'ok', events: [] }]);
      const [afterDone] = await store.journal(instance.id, [{ kind: 'intent', scope, key: 'k', events: [], runId: lease.runId + 2, over: seen }]);
      assert.ok(afterDone !== undefined && 'status' in afterDone && afterDone.status === 'done', 'a done key is never started over');
      // A key forgotten meanwhile (the other run's fn failed) has no entry: started as usual.
      const [gone] = await store.journal(instance.id, [{ kind: 'intent', scope, key: 'forgotten', events: [], runId: lease.runId, over: seen }]);
      assert.equal(gone, undefined);
      assert.equal((await store.effect(scope, 'forgotten'))?.status, 'intent');
      const seqs = (await store.listEvents(instance.id)).map((stored) => stored.chain?.seq);
      assert.equal((await store.chainHead(instance.id))?.seq, seqs.length, 'the chain links every stored event, and no refused one');
    });

    test('liveRunOrFence: a run whose lease expired is fenced (new token, shard free); one whose shard another run took is not live', async () => {
      counter++;
      const instance = await store.instance(`fx-${counter}`, `hash-${counter}`, { params: {}, version: null });
      await store.ensureShards(instance, ['main'], { version: null });
      const first = await store.claim(instance, 'worker-1', 200);
      assert.ok(first);
      assert.ok(await store.liveRunOrFence(first.runId));
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(await store.liveRunOrFence(first.runId), undefined, 'its lease expired');
      const scope = { instanceId: instance.id, generation: instance.generation };
      const fence = { shardId: first.shardId, token: first.token, shard: first.shard, runId: first.runId };
      const [refused] = await store.journal(instance.id, [{ kind: 'claim', scope, key: 'late', events: [], runId: first.runId }], fence);
      assert.ok(refused !== undefined && 'fenced' in refused && refused.fenced === 'refused', 'woken, it can start no effect');
      assert.equal(await store.heartbeat(first, {}), false, 'woken, its heartbeat finds the lease lost');
      const second = await store.claim(instance, 'worker-2', 30_000);
      assert.ok(second, 'the shard is free to claim');
      assert.ok(second.token > first.token);
      assert.equal(await store.liveRunOrFence(first.runId), undefined, 'another run holds its shard');
      assert.equal((await store.liveRunOrFence(second.runId))?.worker, 'worker-2');
    });

    test('journal batch: claim, done, failed and intent of different keys commit together', async () => {
      const { instance } = await claimed();
      const scope = { instanceId: instance.id, generation: instance.generation };
      await store.effectIntent(scope, 'a');
      await store.effectIntent(scope, 'b');
      await store.effectIntent(scope, 'c');
      const outcomes = await store.journal(instance.id, [
        { kind: 'done', scope, key: 'a', result: [1, 2], events: [] },
        { kind: 'failed', scope, key: 'b', events: [] },
        { kind: 'intent', scope, key: 'c', events: [] },
        { kind: 'claim', scope, key: 'd', events: [] },
        { kind: 'claim', scope, key: 'e', events: [] },
      ]);
      assert.deepEqual(outcomes, [undefined, undefined, undefined, undefined, undefined]);
      assert.deepEqual((await store.effect(scope, 'a'))?.result, [1, 2]);
      assert.equal(await store.effect(scope, 'b'), undefined);
      assert.equal((await store.effect(scope, 'c'))?.attempts, 2);
      assert.equal((await store.effect(scope, 'd'))?.status, 'intent');
      assert.equal((await store.effect(scope, 'e'))?.status, 'intent');
      assert.deepEqual(await store.journal(instance.id, []), []);
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

    test('the newest dead letters and their count, without reading every letter', async () => {
      const { instance, lease } = await claimed();
      const tx = await store.begin(lease);
      for (let position = 0; position < 5; position++) await store.addDeadLetter(tx, { position, record: { position }, error: 'poison', attempts: 1 });
      await store.commit(tx, { position: 4, state: {}, processed: 5 }, {});
      assert.equal(await store.countInstanceDeadLetters(instance.id), 5);
      assert.deepEqual(
        (await store.listDeadLetters(instance.id, 2)).map((letter) => letter.position),
        [3, 4],
      );
      assert.deepEqual(
        (await store.listDeadLetters(instance.id, 9)).map((letter) => letter.position),
        [0, 1, 2, 3, 4],
      );
      assert.deepEqual(await store.listDeadLetters(instance.id, 0), []);
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
