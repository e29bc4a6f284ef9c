// Buffered ctx.tx writes (insert, upsert, delete) on every SQL backend: they land exactly once with
// the checkpoint covering them, a query sees the writes made before it, a failed attempt that is
// retried or dead-lettered leaves none of its rows, and a row the database refuses fails the chunk.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineJob, range, runJob } from '../src/index.ts';
import type { Store } from '../src/store.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

/** Reads the table through a one-record job of its own, so one helper serves every backend. */
async function readRows(store: Store, sql: string): Promise<Record<string, unknown>[]> {
  let rows: Record<string, unknown>[] = [];
  const reader = defineJob<number>({
    name: `reader-${Math.random().toString(36).slice(2)}`,
    source: () => range(0, 1),
    async process(_n, ctx) {
      rows = (await ctx.tx.query(sql)).rows;
    },
  });
  const summary = await runJob(reader, { store });
  assert.equal(summary.outcome, 'completed', summary.error);
  return rows.map((row) =>
    Object.fromEntries(Object.entries(row).map(([key, value]) => [key, typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value])),
  );
}

const tables = [
  'CREATE TABLE batch_out (n INTEGER PRIMARY KEY, label VARCHAR(32) NOT NULL)',
  'CREATE TABLE latest (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)',
];

/** DDL outside the job where the backend has a way (MySQL commits DDL by itself, ending ctx.tx). */
async function createTables(store: Store, exec: ((sql: string) => Promise<void>) | undefined): Promise<void> {
  if (exec !== undefined) {
    for (const sql of tables) await exec(sql);
    return;
  }
  const setup = defineJob<number>({
    name: 'setup',
    source: () => range(0, 1),
    async process(_n, ctx) {
      for (const sql of tables) await ctx.tx.query(sql);
    },
  });
  const created = await runJob(setup, { store });
  assert.equal(created.outcome, 'completed', created.error);
}

for (const factory of selectedStoreFactories().filter((candidate) => candidate.param !== undefined)) {
  const p = factory.param as (n: number) => string;
  const skip = (await factory.skip?.()) ?? false;

  test(`${factory.name}: insert, upsert and delete land once; a query sees what was buffered before it`, { skip }, async () => {
    const { store, dispose, exec } = await factory.create();
    try {
      await createTables(store, exec);
      const seen: number[] = [];
      const job = defineJob<number>({
        name: 'batch',
        source: () => range(0, 2_500),
        checkpoint: { every: 700 },
        async process(n, ctx) {
          ctx.tx.insert('batch_out', { n, label: `r${n}` });
          ctx.tx.upsert('latest', { k: n % 10, v: n }, { key: ['k'] });
          if (n % 100 === 99) ctx.tx.delete('batch_out', { n: n - 1 });
          if (n % 500 === 0) {
            const { rows } = await ctx.tx.query<{ c: number | string }>(`SELECT count(*) AS c FROM batch_out WHERE n <= ${p(1)}`, [n]);
            seen.push(Number(rows[0]?.c));
          }
        },
      });
      const summary = await runJob(job, { store });
      assert.equal(summary.outcome, 'completed', summary.error);
      const out = await readRows(store, 'SELECT count(*) AS c, min(n) AS lo, max(n) AS hi FROM batch_out');
      assert.deepEqual(out[0], { c: 2_500 - 25, lo: 0, hi: 2_499 });
      const latest = await readRows(store, 'SELECT k, v FROM latest ORDER BY k');
      assert.deepEqual(
        latest,
        [...Array(10).keys()].map((k) => ({ k, v: 2_490 + k })),
      );
      // Record n's query counts its own insert and every earlier record's (minus deletions so far).
      assert.deepEqual(
        seen.sort((a, b) => a - b),
        [0, 500, 1000, 1500, 2000].map((n) => n + 1 - Math.floor(n / 100)),
      );
    } finally {
      await dispose();
    }
  });

  for (const concurrency of [1, 4]) {
    test(`${factory.name}: a failed attempt's buffered rows are dropped: retried and dead-lettered records (concurrency ${concurrency})`, {
      skip,
    }, async () => {
      const { store, dispose, exec } = await factory.create();
      try {
        await createTables(store, exec);
        const failedOnce = new Set<number>();
        const job = defineJob<number>({
          name: 'batch-retry',
          source: () => range(0, 1_000),
          checkpoint: { every: 300 },
          concurrency,
          retry: { attempts: 2, backoffMs: 1, maxBackoffMs: 1 },
          skip: { limit: 10 },
          // Synchronous on purpose for most records: the runner's synchronous path stages rows too.
          process(n, ctx) {
            ctx.tx.insert('batch_out', { n, label: 'first' });
            if (n % 250 === 7) throw new Error('always fails');
            if (n % 97 === 3 && !failedOnce.has(n)) {
              failedOnce.add(n);
              ctx.tx.insert('batch_out', { n: 100_000 + n, label: 'stray' });
              throw new Error('fails once');
            }
            return n % 3 === 0 ? Promise.resolve() : undefined;
          },
        });
        const summary = await runJob(job, { store });
        assert.equal(summary.outcome, 'completed', summary.error);
        assert.equal(summary.deadLetters, 4);
        const out = await readRows(store, 'SELECT count(*) AS c, max(n) AS hi FROM batch_out');
        assert.deepEqual(out[0], { c: 996, hi: 999 }, 'every record once, none of the failed attempts');
      } finally {
        await dispose();
      }
    });
  }

  for (const concurrency of [1, 4]) {
    test(`${factory.name}: with no retry and no dead letters (rows go straight to the buffer), a query sees every row its record wrote, also after its first query, and a failed run commits no row past its last checkpoint (concurrency ${concurrency})`, {
      skip,
    }, async () => {
      const { store, dispose, exec } = await factory.create();
      try {
        await createTables(store, exec);
        const seen: number[] = [];
        let failAt: number | undefined = 777;
        const job = defineJob<number>({
          name: 'batch-direct',
          source: () => range(0, 1_000),
          checkpoint: { every: 300 },
          concurrency,
          async process(n, ctx) {
            ctx.tx.insert('batch_out', { n, label: 'a' });
            if (n % 100 === 50) {
              await ctx.tx.query(`SELECT count(*) AS c FROM batch_out WHERE n = ${p(1)}`, [n]);
              // Written after the record's first query: its second one must still see it.
              ctx.tx.insert('batch_out', { n: 10_000 + n, label: 'b' });
              const { rows } = await ctx.tx.query<{ c: number | string }>(`SELECT count(*) AS c FROM batch_out WHERE n IN (${p(1)}, ${p(2)})`, [n, 10_000 + n]);
              seen.push(Number(rows[0]?.c));
            }
            if (n === failAt) throw new Error('fails the run');
            await new Promise((resolve) => setImmediate(resolve));
          },
        });
        const failed = await runJob(job, { store });
        assert.equal(failed.outcome, 'failed');
        // The chunk holding record 777 (from 600) was rolled back, with the rows of records in flight beside it.
        assert.deepEqual((await readRows(store, 'SELECT count(*) AS c, max(n) AS hi FROM batch_out WHERE n < 10000'))[0], { c: 600, hi: 599 });
        failAt = undefined;
        const summary = await runJob(job, { store });
        assert.equal(summary.outcome, 'completed', summary.error);
        assert.deepEqual((await readRows(store, 'SELECT count(*) AS c FROM batch_out'))[0], { c: 1_010 });
        assert.ok(seen.length >= 10 && seen.every((count) => count === 2), `each record's second query saw both its rows: ${seen.join(', ')}`);
      } finally {
        await dispose();
      }
    });
  }

  test(`${factory.name}: a buffered row the database refuses fails the chunk; the checkpoint stays at the last good boundary`, { skip }, async () => {
    const { store, dispose, exec } = await factory.create();
    try {
      await createTables(store, exec);
      let duplicate = true;
      const job = defineJob<number>({
        name: 'batch-refused',
        source: () => range(0, 100),
        checkpoint: { every: 40 },
        process(n, ctx) {
          ctx.tx.insert('batch_out', { n: duplicate && n === 50 ? 49 : n, label: 'x' });
        },
      });
      const failed = await runJob(job, { store });
      assert.equal(failed.outcome, 'failed');
      assert.match(failed.error ?? '', /buffered ctx\.tx\.insert into batch_out failed/);
      assert.deepEqual((await readRows(store, 'SELECT count(*) AS c FROM batch_out'))[0], { c: 40 });
      duplicate = false;
      assert.equal((await runJob(job, { store })).outcome, 'completed');
      assert.deepEqual((await readRows(store, 'SELECT count(*) AS c, count(DISTINCT n) AS d FROM batch_out'))[0], { c: 100, d: 100 });
    } finally {
      await dispose();
    }
  });
}
