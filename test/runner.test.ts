// Unit tests of the runner on the memory store: concurrency stays exactly restartable, a failed
// record leaves the checkpoint at the last good boundary, a stop drains and saves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, fromArray, range, runJob, type Source } from '../src/index.ts';
import { MemoryStore } from './helpers/memory-store.ts';

test('concurrency: records finish out of order, checkpoints stay aligned, each record once', async () => {
  const seen: number[] = [];
  const job = defineJob<number, unknown, { sum: number }>({
    name: 'concurrent',
    source: () => range(0, 500),
    initialState: () => ({ sum: 0 }),
    concurrency: 8,
    checkpoint: { every: 50 },
    async process(n, ctx) {
      await sleep(Math.random() * 3);
      seen.push(n);
      ctx.state.sum += n;
    },
  });
  const checkpoints: { position: unknown; processed: number }[] = [];
  const summary = await runJob(job, {
    store: new MemoryStore(),
    onEvent: (event) => {
      if (event.type === 'checkpoint') checkpoints.push({ position: event.data.position, processed: event.data.processed });
    },
  });
  assert.equal(summary.outcome, 'completed');
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    [...Array(500).keys()],
  );
  // At every aligned checkpoint, the position is the last record and every record before it is done.
  for (const checkpoint of checkpoints) assert.equal(checkpoint.position, checkpoint.processed - 1);
  assert.notDeepEqual(seen, [...Array(500).keys()], 'records really ran concurrently');
});

test('a failing record fails the run; the checkpoint stays at the last good boundary', async () => {
  const store = new MemoryStore();
  let failAt: number | undefined = 130;
  const job = defineJob<number>({
    name: 'fails',
    source: () => range(0, 200),
    checkpoint: { every: 50 },
    process(n) {
      if (n === failAt) throw new Error(`record ${n} is poison`);
    },
  });
  const failed = await runJob(job, { store });
  assert.equal(failed.outcome, 'failed');
  assert.equal(failed.exitCode, 1);
  assert.match(failed.error ?? '', /record 130 is poison/);
  assert.equal(failed.shards[0]?.position, 99);
  failAt = undefined;
  const fixed = await runJob(job, { store });
  assert.equal(fixed.outcome, 'completed');
  assert.equal(fixed.records, 100, 'resumes after record 99');
});

test('a stop drains records in flight and saves a checkpoint at the last one', async () => {
  const controller = new AbortController();
  const store = new MemoryStore();
  const job = defineJob<number>({
    name: 'stops',
    source: () => range(0, 10_000),
    concurrency: 4,
    checkpoint: { every: 100_000 },
    async process(n) {
      if (n === 300) controller.abort();
      await sleep(1);
    },
  });
  const stopped = await runJob(job, { store, signal: controller.signal });
  assert.equal(stopped.outcome, 'interrupted');
  assert.equal(stopped.exitCode, 3);
  const position = stopped.shards[0]?.position as number;
  assert.ok(position >= 300 && position < 310, `stopped at ${position}`);
  assert.equal(stopped.shards[0]?.processed, position + 1);
  const resumed = await runJob(job, { store });
  assert.equal(resumed.records, 10_000 - position - 1);
  assert.equal(resumed.rework, 0);
});

test('params: parsed, hashed into the instance identity; rejected params are a usage error', async () => {
  const store = new MemoryStore();
  const job = defineJob<string, { day: string }>({
    name: 'daily',
    params: (raw) => {
      if (raw.day === 'bad') throw new Error('day must be a date');
      return { day: raw.day ?? '2026-01-01' };
    },
    source: ({ params }) => fromArray([params.day]),
    process() {},
  });
  const first = await runJob(job, { store });
  const same = await runJob(job, { store, params: { day: '2026-01-01' } });
  assert.equal(same.outcome, 'already-complete');
  assert.equal(same.instanceId, first.instanceId);
  const other = await runJob(job, { store, params: { day: '2026-01-02' } });
  assert.notEqual(other.instanceId, first.instanceId);
  await assert.rejects(runJob(job, { store, params: { day: 'bad' } }), { name: 'UsageError', exitCode: 2, message: /rejected its params: day must be a date/ });
});

test('shards: each has its own checkpoint; the instance completes when all have', async () => {
  const store = new MemoryStore();
  const job = defineJob<number, unknown, { sum: number }>({
    name: 'sharded',
    shards: () => ['a', 'b', 'c'],
    source: ({ shard }) => range(0, shard === 'a' ? 10 : 20),
    initialState: () => ({ sum: 0 }),
    process(n, ctx) {
      ctx.state.sum += n;
    },
  });
  const summary = await runJob(job, { store });
  assert.equal(summary.outcome, 'completed');
  assert.deepEqual(
    summary.shards.map((shard) => [shard.shard, shard.processed]),
    [
      ['a', 10],
      ['b', 20],
      ['c', 20],
    ],
  );
  assert.equal(summary.records, 50);
});

/** Yields `count` records at once, then nothing until its read is aborted. */
function stallingSource(count: number): Source<number, number> {
  return {
    async *read(after, { signal }) {
      for (let n = after === undefined ? 0 : after + 1; n < count; n++) yield { position: n, record: n };
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    },
  };
}

test('a quiet source holds up neither a time-based checkpoint nor a stop', async () => {
  const store = new MemoryStore();
  const controller = new AbortController();
  const checkpoints: number[] = [];
  const job = defineJob<number>({ name: 'quiet', source: () => stallingSource(5), checkpoint: { everyMs: 50 }, process() {} });
  const running = runJob(job, {
    store,
    heartbeatMs: 20,
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'checkpoint') {
        checkpoints.push(event.data.processed);
        controller.abort();
      }
    },
  });
  const summary = await running;
  assert.deepEqual(checkpoints, [5], 'the 5 records done were checkpointed while the source was quiet');
  assert.equal(summary.outcome, 'interrupted');
  assert.equal(summary.shards[0]?.position, 4);
});

test('a source that cannot start fails the run and releases its shard', async () => {
  const store = new MemoryStore();
  const job = defineJob<number>({
    name: 'no-source',
    source: () => {
      throw new Error('orders.ndjson: no such file');
    },
    process() {},
  });
  const summary = await runJob(job, { store });
  assert.equal(summary.outcome, 'failed');
  assert.match(summary.error ?? '', /shard main: orders.ndjson: no such file/);
  const [instance] = await store.listInstances();
  assert.deepEqual(await store.holders(instance?.id ?? 0), []);
});
