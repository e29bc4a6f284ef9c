// The Store contract for guards (issue 21): effect limits counted in the claim's own
// transaction, holds, and approvals that release them, on every backend (CKPT_TEST_STORES
// selects them), like test/store-contract.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InstanceInfo, JournalOutcome, JournalWrite, Store } from '../src/store.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

for (const factory of selectedStoreFactories()) {
  describe(`Store contract, guards: ${factory.name}`, { skip: await factory.skip?.() }, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    let counter = 0;
    before(async () => {
      ({ store, dispose } = await factory.create());
    });
    after(async () => {
      await dispose();
    });

    async function fresh(): Promise<InstanceInfo> {
      counter++;
      const instance = await store.instance(`guard-${counter}`, `hash-${counter}`, { params: {}, version: null });
      await store.ensureShards(instance, ['main'], { version: null });
      return instance;
    }

    const claim = (instance: InstanceInfo, key: string, max: number): JournalWrite => ({
      kind: 'claim',
      scope: { instanceId: instance.id, generation: instance.generation },
      key,
      events: [{ type: 'effect:start', data: { shard: 'main', key, attempt: 1 } }],
      limit: { kind: 'disable', max, generation: instance.generation },
    });
    const limited = (outcome: JournalOutcome) => outcome !== undefined && 'limited' in outcome;

    test('a limit lets exactly max claims through, counted once per key, across concurrent batches', async () => {
      const instance = await fresh();
      // 20 batches of 10 new keys at once (on PostgreSQL and MySQL, on several pooled connections).
      const batches = Array.from({ length: 20 }, (_, b) => Array.from({ length: 10 }, (_, i) => claim(instance, `disable:${b}-${i}`, 100)));
      const outcomes = (await Promise.all(batches.map((batch) => store.journal(instance.id, batch)))).flat();
      assert.equal(outcomes.filter((outcome) => outcome === undefined).length, 100, 'exactly 100 claimed');
      assert.equal(outcomes.filter(limited).length, 100, 'the other 100 refused by the limit');
      const refused = outcomes.find(limited) as { limited: { kind: string; used: number; max: number; raised: number } };
      assert.deepEqual(refused.limited, { kind: 'disable', used: 100, max: 100, raised: 0 });
      assert.deepEqual(await store.effectCounts(instance.id, instance.generation), [{ kind: 'disable', used: 100, raised: 0 }]);
      // A refused claim wrote nothing: no entry, no effect:start event.
      const keys = batches.flat().map((write) => ('key' in write ? write.key : ''));
      const entries = await Promise.all(keys.map((key) => store.effect({ instanceId: instance.id, generation: instance.generation }, key)));
      assert.equal(entries.filter((entry) => entry !== undefined).length, 100);
      const starts = (await store.listEvents(instance.id)).filter((event) => event.type === 'effect:start');
      assert.equal(starts.length, 100);
    });

    test('a key already claimed counts nothing again; a failure gives its count back', async () => {
      const instance = await fresh();
      const scope = { instanceId: instance.id, generation: instance.generation };
      assert.deepEqual(await store.journal(instance.id, [claim(instance, 'disable:a', 2), claim(instance, 'disable:b', 2)]), [undefined, undefined]);
      // A claim of a key with an entry answers the entry and is not counted (nor refused at the limit).
      const again = await store.journal(instance.id, [claim(instance, 'disable:a', 2)]);
      assert.equal((again[0] as { status?: string }).status, 'intent');
      assert.ok(limited((await store.journal(instance.id, [claim(instance, 'disable:c', 2)]))[0]), 'the third key is refused');
      // fn of b threw: its intent is forgotten, and its count given back.
      await store.journal(instance.id, [
        { kind: 'failed', scope, key: 'disable:b', events: [], limit: { kind: 'disable', max: 2, generation: instance.generation } },
      ]);
      assert.deepEqual(await store.effectCounts(instance.id, instance.generation), [{ kind: 'disable', used: 1, raised: 0 }]);
      assert.deepEqual(await store.journal(instance.id, [claim(instance, 'disable:c', 2)]), [undefined]);
      // A done key's failure (never written by once, but possible) gives nothing back.
      await store.journal(instance.id, [{ kind: 'done', scope, key: 'disable:c', result: null, events: [] }]);
      await store.journal(instance.id, [
        { kind: 'failed', scope, key: 'disable:c', events: [], limit: { kind: 'disable', max: 2, generation: instance.generation } },
      ]);
      assert.deepEqual(await store.effectCounts(instance.id, instance.generation), [{ kind: 'disable', used: 2, raised: 0 }]);
    });

    test('a hold opens once, with its event; approvals by two distinct people release it and raise the limit', async () => {
      const instance = await fresh();
      const { id, generation } = instance;
      for (let i = 0; i < 3; i++) await store.journal(id, [claim(instance, `disable:${i}`, 3)]);
      assert.ok(limited((await store.journal(id, [claim(instance, 'disable:3', 3)]))[0]));
      const held = { type: 'guard:held', data: { shard: 'main', hold: 'limit:disable', round: 0, required: 2, next: 'ckpt approve' } };
      const detail = { kind: 'disable', used: 3, max: 3, raised: 0 };
      const { hold: first, opened } = await store.hold(id, generation, { name: 'limit:disable', kind: 'limit', detail, required: 2 }, [held]);
      assert.ok(opened);
      assert.equal(first.round, 1);
      assert.equal(first.releasedAt, null);
      const second = await store.hold(id, generation, { name: 'limit:disable', kind: 'limit', detail, required: 2 }, [held]);
      assert.deepEqual(second, { hold: first, opened: false }, 'an open hold stays as first recorded');
      assert.equal((await store.listEvents(id)).filter((event) => event.type === 'guard:held').length, 1, 'one guard:held for one hold');

      const nobody = await store.approve(id, generation, { name: 'limit:revoke', by: 'alice', osUser: 'ops', reason: 'r', raise: 5 });
      assert.equal(nobody.outcome, 'not-held');
      assert.deepEqual(nobody.outcome === 'not-held' ? nobody.holds.map((hold) => hold.name) : [], ['limit:disable']);

      const alice = await store.approve(id, generation, { name: 'limit:disable', by: 'alice', osUser: 'ops', reason: 'checked the list', raise: 5 });
      assert.equal(alice.outcome, 'recorded');
      assert.equal(alice.outcome === 'recorded' && alice.released, false, 'one approval of two releases nothing');
      assert.ok(limited((await store.journal(id, [claim(instance, 'disable:3', 3)]))[0]), 'still held at the limit');
      assert.equal(
        (await store.approve(id, generation, { name: 'limit:disable', by: 'alice', osUser: 'ops', reason: 'again', raise: 5 })).outcome,
        'already-approved',
      );
      const other = await store.approve(id, generation, { name: 'limit:disable', by: 'bob', osUser: 'ops', reason: 'more', raise: 50 });
      assert.equal(other.outcome, 'other-raise');
      assert.equal(other.outcome === 'other-raise' && other.pending, 5);

      const bob = await store.approve(id, generation, { name: 'limit:disable', by: 'bob', osUser: 'root', reason: 'agreed', raise: null });
      assert.equal(bob.outcome, 'recorded');
      assert.ok(bob.outcome === 'recorded' && bob.released);
      assert.ok(bob.outcome === 'recorded' && bob.hold.releasedAt !== null);
      assert.deepEqual(bob.outcome === 'recorded' ? bob.hold.approvals.map(({ by, osUser, raise }) => ({ by, osUser, raise })) : [], [
        { by: 'alice', osUser: 'ops', raise: 5 },
        { by: 'bob', osUser: 'root', raise: null },
      ]);
      assert.deepEqual(await store.effectCounts(id, generation), [{ kind: 'disable', used: 3, raised: 5 }]);
      const after = await Promise.all(Array.from({ length: 7 }, (_, i) => store.journal(id, [claim(instance, `disable:more-${i}`, 3)])));
      assert.equal(after.flat().filter((outcome) => outcome === undefined).length, 5, 'the raise lets exactly 5 more through');

      const events = (await store.listEvents(id)).filter((event) => event.type.startsWith('guard:'));
      assert.deepEqual(
        events.map((event) => [event.type, event.data.by ?? null]),
        [
          ['guard:held', null],
          ['guard:approved', 'alice'],
          ['guard:approved', 'bob'],
          ['guard:released', null],
        ],
      );
      assert.equal(events[0]?.data.round, 1);
      assert.deepEqual(events[3]?.data, { name: 'limit:disable', round: 1, raise: 5, approvers: ['alice', 'bob'] });
      assert.ok(
        events.every((event) => event.chain !== null),
        'every guard event is chained',
      );

      // The limit reached again opens the next round, which needs its own approvals.
      const { hold: again } = await store.hold(
        id,
        generation,
        { name: 'limit:disable', kind: 'limit', detail: { ...detail, used: 8, raised: 5 }, required: 2 },
        [held],
      );
      assert.equal(again.round, 2);
      assert.equal(again.releasedAt, null);
      assert.deepEqual(again.approvals, []);
      assert.deepEqual(
        (await store.holds(id, generation)).map((hold) => [hold.name, hold.round, hold.releasedAt === null]),
        [['limit:disable', 2, true]],
      );
    });

    test('an approval point is held and released by one approval when one is required', async () => {
      const instance = await fresh();
      const { id, generation } = instance;
      const { hold } = await store.hold(id, generation, { name: 'point:revoke-phase', kind: 'point', detail: { summary: '12 keys' }, required: 1 }, []);
      assert.equal(hold.kind, 'point');
      assert.deepEqual(hold.detail, { summary: '12 keys' });
      const approved = await store.approve(id, generation, { name: 'point:revoke-phase', by: 'carol', osUser: null, reason: 'go', raise: null });
      assert.ok(approved.outcome === 'recorded' && approved.released);
      assert.equal((await store.holds(id, generation))[0]?.releasedAt !== null, true);
      assert.deepEqual(await store.holds(id, generation + 1), [], 'holds are of one generation');
    });
  });
}
