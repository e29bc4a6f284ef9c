// In-process tests of retries, dead letters, effects and steps on the memory store (the crash
// behaviour is proven with real processes in crash-exactly-once, effects-in-doubt and rotate-keys).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, type RunEvent, range, runJob, secret } from '../src/index.ts';
import { MemoryStore } from './helpers/memory-store.ts';

test('retries with backoff, then dead letters up to the skip limit, concurrently', async () => {
  const attempts = new Map<number, number>();
  const job = defineJob<number>({
    name: 'retrying',
    source: () => range(0, 40),
    concurrency: 4,
    checkpoint: { every: 10 },
    retry: { attempts: 3, backoffMs: 2, maxBackoffMs: 4 },
    skip: { limit: 2 },
    async process(n) {
      attempts.set(n, (attempts.get(n) ?? 0) + 1);
      await sleep(Math.random() * 2);
      if (n === 7 && attempts.get(n) === 1) throw new Error('flaky');
      if (n === 11 || n === 29) throw new Error(`poison ${n}`);
    },
  });
  const store = new MemoryStore();
  const events: RunEvent[] = [];
  const summary = await runJob(job, { store, onEvent: (event) => events.push(event) });
  assert.equal(summary.outcome, 'completed');
  assert.equal(summary.deadLetters, 2);
  assert.equal(attempts.get(7), 2);
  assert.equal(attempts.get(11), 3);
  const retries = events.filter((event) => event.type === 'record:retry');
  assert.equal(retries.length, 1 + 2 + 2);
  const [instance] = await store.listInstances('retrying');
  const letters = await store.listDeadLetters(instance?.id ?? 0);
  assert.deepEqual(
    letters.map((letter) => [letter.position, letter.error.replace(/ at test\/runner-effects\.test\.ts:\d+:\d+$/, ' at L:C'), letter.attempts]),
    [
      [11, 'poison 11 at L:C', 3],
      [29, 'poison 29 at L:C', 3],
    ],
  );
});

test('once runs an effect once per key even when records race for it; steps return recorded results', async () => {
  const calls: string[] = [];
  const job = defineJob<number>({
    name: 'effects-in-process',
    source: () => range(0, 8),
    concurrency: 8,
    async process(n, ctx) {
      const shared = await ctx.once('shared', async () => {
        calls.push('shared');
        await sleep(5);
        return { by: n };
      });
      assert.ok(shared && typeof shared.by === 'number');
      const token = await ctx.step('issue', () => ({ value: secret(`tok-${n}`) }));
      assert.equal(token.value.reveal(), `tok-${n}`);
      const again = await ctx.step('issue', (): { value: typeof token.value } => assert.fail('a finished step is not run again'));
      assert.equal(again.value.reveal(), `tok-${n}`, 'the recorded result, secret included');
      assert.match(ctx.idempotencyKey('issue'), /^ckpt-[0-9a-f]{32}$/);
      assert.notEqual(ctx.idempotencyKey('issue'), ctx.idempotencyKey('other'));
    },
  });
  const summary = await runJob(job, { store: new MemoryStore() });
  assert.equal(summary.outcome, 'completed', summary.error);
  assert.deepEqual(calls, ['shared']);
});
