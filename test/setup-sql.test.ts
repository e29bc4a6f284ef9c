// setup() runs at the start of every shard run inside the shard's transaction, and ctx.tx.sql
// writes the right placeholders on every SQL store: one job, unchanged, on SQLite, PostgreSQL and
// MySQL (where DDL commits by itself, so the table is made before the run, not in setup).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineJob, range, runJob } from '../src/index.ts';
import { MemoryStore } from './helpers/memory-store.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

for (const factory of selectedStoreFactories().filter((candidate) => candidate.param !== undefined)) {
  const DDL = 'CREATE TABLE IF NOT EXISTS authoring_seen (n INTEGER PRIMARY KEY, label TEXT NOT NULL)';
  test(`${factory.name}: setup runs in every shard run (first and resume); ctx.tx.sql binds values`, { skip: await factory.skip?.() }, async () => {
    const { store, dispose, exec } = await factory.create();
    try {
      if (factory.name === 'mysql') await exec?.(DDL);
      const setups: { dialect: string; rowsBefore: number }[] = [];
      let failAt: number | undefined = 30;
      const writer = defineJob<number, unknown, { rowsBefore: number }>({
        name: 'setup-writer',
        source: () => range(0, 50),
        checkpoint: { every: 10 },
        concurrency: 4,
        async setup({ tx, state }) {
          if (tx.dialect !== 'mysql') await tx.query(DDL);
          const { rows } = await tx.sql<{ c: number | string }>`SELECT COUNT(*) AS c FROM authoring_seen WHERE n >= ${0}`;
          state.rowsBefore = Number(rows[0]?.c);
          setups.push({ dialect: tx.dialect, rowsBefore: state.rowsBefore });
        },
        async process(n, ctx) {
          // A quote and a placeholder-looking text: values are bound, never spliced into the SQL.
          await ctx.tx.sql`INSERT INTO authoring_seen (n, label) VALUES (${n}, ${`O'Brien $1 ? ${n}`})`;
          if (n === failAt) throw new Error(`record ${n} fails this time`);
        },
      });
      const failed = await runJob(writer, { store });
      assert.equal(failed.outcome, 'failed');
      failAt = undefined;
      const resumed = await runJob(writer, { store });
      assert.equal(resumed.outcome, 'completed', resumed.error);
      assert.deepEqual(
        setups,
        [
          { dialect: factory.name, rowsBefore: 0 },
          { dialect: factory.name, rowsBefore: 30 },
        ],
        'setup ran at each shard run, seeing the rows the last checkpoint committed',
      );

      // Read back through another job's setup: exactly 0..49, once each, labels intact.
      let rows: { n: number; label: string }[] = [];
      const reader = defineJob<number>({
        name: 'setup-reader',
        source: () => range(0, 0),
        async setup({ tx }) {
          rows = (await tx.sql<{ n: number; label: string }>`SELECT n, label FROM authoring_seen WHERE label LIKE ${'O%'} ORDER BY n`).rows;
        },
        process() {},
      });
      assert.equal((await runJob(reader, { store })).outcome, 'completed');
      assert.deepEqual(
        rows.map((row) => [Number(row.n), row.label]),
        Array.from({ length: 50 }, (_, n) => [n, `O'Brien $1 ? ${n}`]),
      );
    } finally {
      await dispose();
    }
  });
}

test('a setup that throws fails the run before any record, naming where in the job file', async () => {
  let processed = 0;
  const job = defineJob<number>({
    name: 'setup-throws',
    source: () => range(0, 10),
    setup: ({ params }) => {
      (params as unknown as { missing: { x: number } }).missing.x;
    },
    process() {
      processed++;
    },
  });
  const summary = await runJob(job, { store: new MemoryStore() });
  assert.equal(summary.outcome, 'failed');
  assert.equal(processed, 0);
  assert.match(
    summary.error ?? '',
    /^shard main: setup\(\) failed: TypeError: Cannot read properties of undefined \(reading 'x'\) at \S*setup-sql\.test\.ts:\d+:\d+$/,
  );
});

test('setup on a store without SQL: runs, and says so only if it uses tx', async () => {
  const calls: string[] = [];
  const plain = defineJob<number>({ name: 'setup-plain', source: () => range(0, 3), setup: ({ shard }) => void calls.push(shard), process() {} });
  assert.equal((await runJob(plain, { store: new MemoryStore() })).outcome, 'completed');
  assert.deepEqual(calls, ['main']);
  const sql = defineJob<number>({ name: 'setup-sql', source: () => range(0, 3), setup: ({ tx }) => tx.query('SELECT 1'), process() {} });
  const summary = await runJob(sql, { store: new MemoryStore() });
  assert.equal(summary.outcome, 'failed');
  assert.match(summary.error ?? '', /setup\(\) failed: setup: tx needs a SQL store/);
});
