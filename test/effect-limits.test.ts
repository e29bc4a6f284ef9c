// A job's effect limits, holds and approvals through runJob on a real SQLite store (the crash
// and multi-worker proof is test/guard-limits-crash.test.ts; the store contract,
// test/store-contract-guards.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { defineJob, ExitCode, type RunEvent, range, runJob } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';

/** Runs `body` on a fresh SQLite store in a directory of its own, removed afterwards. */
async function withStore(body: (store: SqliteStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-limits-'));
  const store = new SqliteStore(join(dir, 'store.db'));
  try {
    await store.migrate();
    await body(store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a limit holds the instance before the 11th disable (exit 7); two approvers release it with a raise; the job completes', () =>
  withStore(async (store) => {
    const disabled: number[] = [];
    const job = defineJob<number>({
      name: 'deprovision',
      source: () => range(0, 30),
      checkpoint: { every: 4 },
      concurrency: 3,
      limits: { disable: { max: 10 } },
      approvals: 2,
      async process(n, ctx) {
        await ctx.once(`disable:${n}`, () => {
          disabled.push(n);
        });
        await ctx.once(`log:${n}`, () => undefined);
      },
    });
    const events: RunEvent[] = [];
    const held = await runJob(job, { store, onEvent: (event) => events.push(event) });
    assert.equal(held.outcome, 'held');
    assert.equal(held.exitCode, ExitCode.held);
    assert.equal(disabled.length, 10, 'exactly the limit');
    assert.match(
      held.error ?? '',
      /limit on disable effects is reached \(10 of 10 started\).*2 approvals needed \(0 given\).*ckpt approve deprovision --raise disable=\+N/,
    );
    assert.equal(events.filter((event) => event.type === 'guard:held').length, 1);
    // Held: a run again claims nothing and says so.
    const again = await runJob(job, { store });
    assert.equal(again.outcome, 'held');
    assert.equal(disabled.length, 10);

    const [instance] = await store.listInstances('deprovision');
    assert.ok(instance);
    const first = await store.approve(instance.id, instance.generation, { name: 'limit:disable', by: 'alice', osUser: null, reason: 'ok', raise: 100 });
    assert.ok(first.outcome === 'recorded' && !first.released);
    assert.equal((await runJob(job, { store })).outcome, 'held', 'one approval of two is not enough');
    const second = await store.approve(instance.id, instance.generation, { name: 'limit:disable', by: 'bob', osUser: null, reason: 'ok', raise: null });
    assert.ok(second.outcome === 'recorded' && second.released);
    const done = await runJob(job, { store });
    assert.equal(done.outcome, 'completed');
    assert.deepEqual(
      [...disabled].sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i),
      'every account disabled once',
    );
    assert.deepEqual(await store.effectCounts(instance.id, instance.generation), [{ kind: 'disable', used: 30, raised: 100 }]);
  }));

test('ctx.approval holds at a named point until approved, then passes', () =>
  withStore(async (store) => {
    const revoked: number[] = [];
    const job = defineJob<number>({
      name: 'rotate',
      source: () => range(0, 5),
      async process(n, ctx) {
        await ctx.approval('revoke-phase', { summary: 'revoke 5 old keys' });
        await ctx.once(`revoke:${n}`, () => {
          revoked.push(n);
        });
      },
    });
    const held = await runJob(job, { store });
    assert.equal(held.exitCode, ExitCode.held);
    assert.match(held.error ?? '', /held: approval point revoke-phase \(revoke 5 old keys\).*ckpt approve rotate --point revoke-phase/);
    assert.deepEqual(revoked, []);
    const [instance] = await store.listInstances('rotate');
    assert.ok(instance);
    await store.approve(instance.id, instance.generation, { name: 'point:revoke-phase', by: 'carol', osUser: null, reason: 'go', raise: null });
    assert.equal((await runJob(job, { store })).outcome, 'completed');
    assert.deepEqual(revoked, [0, 1, 2, 3, 4]);
  }));

test('a job that catches the HeldError is still held: nothing past the hold runs, no record past it counts, and the approval lets each run once', () =>
  withStore(async (store) => {
    const revoked: number[] = [];
    const disabled: number[] = [];
    const job = defineJob<number>({
      name: 'careless',
      source: () => range(0, 10),
      checkpoint: { every: 2 },
      limits: { disable: { max: 3 } },
      async process(n, ctx) {
        // Swallows every error, the hold included: the record would look done without its effects.
        try {
          await ctx.once(`disable:${n}`, () => {
            disabled.push(n);
          });
        } catch {}
        try {
          if (n >= 6) await ctx.approval('revoke-phase');
          await ctx.once(`revoke:${n}`, () => {
            revoked.push(n);
          });
        } catch {}
      },
    });
    const held = await runJob(job, { store });
    assert.equal(held.outcome, 'held', 'a caught HeldError still holds the run');
    assert.match(held.error ?? '', /limit on disable effects is reached \(3 of 3 started\)/);
    assert.deepEqual(disabled, [0, 1, 2], 'exactly the limit');
    assert.deepEqual(revoked, [0, 1, 2], 'no effect ran after the hold, in the record that met it or later');
    const [instance] = await store.listInstances('careless');
    assert.ok(instance);
    const shards = await store.listShards(instance.id);
    assert.ok(
      shards.every((shard) => shard.processed <= 3),
      `no record past the hold was counted: ${JSON.stringify(shards)}`,
    );
    await store.approve(instance.id, instance.generation, { name: 'limit:disable', by: 'alice', osUser: null, reason: 'ok', raise: 100 });
    const atPoint = await runJob(job, { store });
    assert.equal(atPoint.outcome, 'held', 'then the approval point holds it, although caught');
    assert.deepEqual(revoked, [0, 1, 2, 3, 4, 5], 'nothing revoked past the point');
    await store.approve(instance.id, instance.generation, { name: 'point:revoke-phase', by: 'bob', osUser: null, reason: 'go', raise: null });
    assert.equal((await runJob(job, { store })).outcome, 'completed');
    assert.deepEqual(disabled, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each disabled once');
    assert.deepEqual(revoked, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each revoked once');
  }));

test('maxPercent is a share of the instance, not of one shard: 4 shards of 25 records, 10 % holds after exactly 10', () =>
  withStore(async (store) => {
    const disabled: string[] = [];
    const job = defineJob<number>({
      name: 'sharded',
      shards: () => ['a', 'b', 'c', 'd'],
      source: () => range(0, 25),
      limits: { disable: { maxPercent: 10 } },
      async process(n, ctx) {
        await ctx.once(`disable:${ctx.shard}:${n}`, () => {
          disabled.push(`${ctx.shard}:${n}`);
        });
      },
    });
    const held = await runJob(job, { store });
    assert.equal(held.outcome, 'held');
    assert.match(held.error ?? '', /limit on disable effects is reached \(10 of 10 started\)/);
    assert.equal(disabled.length, 10, '10 % of the instance’s 100 records');
  }));

test('a hold swallowed at the last record: the completing commit is refused too, and the run ends held with nothing committed', () =>
  withStore(async (store) => {
    const disabled: number[] = [];
    const job = defineJob<number>({
      name: 'careless-last',
      source: () => range(0, 4),
      checkpoint: { every: 100 },
      limits: { disable: { max: 3 } },
      async process(n, ctx) {
        try {
          await ctx.once(`disable:${n}`, () => {
            disabled.push(n);
          });
        } catch {}
      },
    });
    const held = await runJob(job, { store });
    assert.equal(held.outcome, 'held', `${held.outcome}: ${held.error}`);
    assert.deepEqual(disabled, [0, 1, 2]);
    const [instance] = await store.listInstances('careless-last');
    assert.ok(instance);
    const [shard] = await store.listShards(instance.id);
    assert.equal(shard?.status, 'pending', 'the shard is not completed');
    assert.equal(shard?.processed, 0, 'no record of the chunk counted');
    assert.equal((await runJob(job, { store })).outcome, 'held');
  }));

test('the approve command a hold prints quotes a kind a shell would split or run, as it quotes params', () =>
  withStore(async (store) => {
    const kind = "revoke $(touch pwned) 'keys'";
    const job = defineJob<number>({
      name: 'rotate-keys',
      source: () => range(0, 3),
      limits: { [kind]: { max: 1 } },
      async process(n, ctx) {
        await ctx.once(`key-${n}`, () => undefined, { kind });
      },
    });
    const held = await runJob(job, { store });
    assert.equal(held.outcome, 'held');
    const command = /approve with: (.*), then run again/.exec(held.error ?? '')?.[1];
    assert.equal(command, `ckpt approve rotate-keys --raise 'revoke $(touch pwned) '\\''keys'\\''=+N' --by NAME --reason TEXT`);
  }));

test('an approval point name longer than every store holds (its hold point:<name> over 255 characters) fails its record saying so, holding nothing; 249 characters hold', () =>
  withStore(async (store) => {
    const named = (name: string) =>
      defineJob<number>({
        name: `points-${name.length}`,
        source: () => range(0, 1),
        retry: { attempts: 1 },
        async process(_n, ctx) {
          await ctx.approval(name);
        },
      });
    const long = await runJob(named('p'.repeat(250)), { store });
    const [longInstance] = await store.listInstances('points-250');
    assert.ok(longInstance);
    assert.deepEqual(await store.holds(longInstance.id, longInstance.generation), [], 'no hold stored');
    const letters = await store.listDeadLetters(longInstance.id);
    assert.match(`${long.error ?? ''} ${letters.map((letter) => letter.error).join(' ')}`, /ctx\.approval needs a name of at most 249 characters \(got 250\)/);
    const fits = await runJob(named('p'.repeat(249)), { store });
    assert.equal(fits.outcome, 'held');
  }));
