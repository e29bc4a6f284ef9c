// A record that fails after writing through ctx.tx: without retries or skips its failure fails
// the run and the whole open chunk is rolled back (no per-record savepoint is needed); with
// retries, only the failed attempt's writes are undone.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { defineJob, range, runJob } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { tempDir } from './helpers/cli.ts';

function rows(path: string): number[] {
  const db = new DatabaseSync(path);
  try {
    return (db.prepare('SELECT n FROM out ORDER BY n').all() as { n: number }[]).map((row) => row.n);
  } finally {
    db.close();
  }
}

for (const concurrency of [1, 4]) {
  test(`no retries (concurrency ${concurrency}): a failing record rolls back its chunk; the rerun writes each row once`, async () => {
    const path = join(tempDir('ckpt-txfail-'), 'store.db');
    let poison: number | undefined = 130;
    const job = defineJob<number>({
      name: 'tx-fail',
      source: () => range(0, 200),
      checkpoint: { every: 50 },
      concurrency,
      async process(n, ctx) {
        await ctx.tx.query('CREATE TABLE IF NOT EXISTS out (n INTEGER NOT NULL UNIQUE)');
        await ctx.tx.query('INSERT INTO out (n) VALUES (?)', [n]);
        if (n === poison) throw new Error('poison');
      },
    });
    const store = new SqliteStore(path);
    await store.migrate();
    const failed = await runJob(job, { store });
    assert.equal(failed.outcome, 'failed');
    assert.deepEqual(rows(path), [...Array(100).keys()], 'only the committed chunks remain');
    poison = undefined;
    const fixed = await runJob(job, { store });
    assert.equal(fixed.outcome, 'completed');
    assert.deepEqual(rows(path), [...Array(200).keys()]);
    await store.close();
  });
}

test('with retries: the failed attempt’s writes are undone, the retry’s kept', async () => {
  const path = join(tempDir('ckpt-txretry-'), 'store.db');
  const failedOnce = new Set<number>();
  const job = defineJob<number>({
    name: 'tx-retry',
    source: () => range(0, 100),
    retry: { attempts: 2, backoffMs: 0 },
    async process(n, ctx) {
      await ctx.tx.query('CREATE TABLE IF NOT EXISTS out (n INTEGER NOT NULL UNIQUE)');
      await ctx.tx.query('INSERT INTO out (n) VALUES (?)', [n]);
      if (n % 10 === 3 && !failedOnce.has(n)) {
        failedOnce.add(n);
        throw new Error('flaky');
      }
    },
  });
  const store = new SqliteStore(path);
  await store.migrate();
  const summary = await runJob(job, { store });
  assert.equal(summary.outcome, 'completed');
  assert.equal(failedOnce.size, 10);
  assert.deepEqual(rows(path), [...Array(100).keys()]);
  await store.close();
});
