// ctx.tx on PostgreSQL under concurrency 8 with per-record savepoints (some records fail their
// first attempt after writing) and random SIGKILLs: afterwards every row exactly once.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fixture, runCli, spawnCli } from './helpers/cli.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const RECORDS = 20_000;
const KILLS = 10;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

test(`ctx.tx rows exactly once on PostgreSQL after ${KILLS} SIGKILLs (concurrency 8, ${RECORDS} records)`, { timeout: 120_000 }, async (t) => {
  const database = await freshDatabase();
  cleanups.push(database.drop);
  await withPool(database.url, async (pool) => {
    await pool.query('CREATE TABLE out (n INTEGER NOT NULL, shard TEXT)');
    await pool.query('CREATE TABLE progress (id INTEGER PRIMARY KEY, done INTEGER NOT NULL)');
    await pool.query('INSERT INTO progress VALUES (1, 0)');
  });
  const args = ['run', fixture('tx-rows.ts'), '--store', `${database.url}?schema=ckpt`, '--param', `count=${RECORDS}`];

  let kills = 0;
  while (kills < KILLS) {
    const { child, done } = spawnCli(args, { env: { TX_ROWS_STALL_AFTER: '2400' } });
    // After one to three checkpoints and a few ms more: in a record, between records or in a commit.
    const afterCheckpoints = 1 + Math.floor(Math.random() * 3);
    let seen = 0;
    let timer: NodeJS.Timeout | undefined;
    const backstop = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString().split('"type":"checkpoint"').length - 1;
      if (seen >= afterCheckpoints && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 15));
    });
    const result = await done;
    clearTimeout(timer);
    clearTimeout(backstop);
    assert.equal(result.signal, 'SIGKILL', `a run ended by itself: exit ${result.code} ${result.stderr}`);
    kills++;
  }
  const final = await runCli([...args, '--quiet']);
  assert.equal(final.code, 0, final.stderr);

  const { rows, done, crashed } = await withPool(database.url, async (pool) => ({
    rows: (await pool.query('SELECT count(*) AS total, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi FROM out')).rows[0] ?? {},
    done: Number((await pool.query('SELECT done FROM progress')).rows[0]?.done),
    crashed: Number((await pool.query("SELECT count(*) AS n FROM ckpt.runs WHERE outcome = 'crashed'")).rows[0]?.n),
  }));
  assert.deepEqual(
    { total: Number(rows.total), distinct: Number(rows.distinct_n), lo: Number(rows.lo), hi: Number(rows.hi) },
    { total: RECORDS, distinct: RECORDS, lo: 0, hi: RECORDS - 1 },
  );
  assert.equal(done, RECORDS, 'the second write of each record landed exactly once');
  assert.ok(crashed >= KILLS, `every kill left a crashed run (${crashed})`);
  t.diagnostic(`${kills} SIGKILLs, ${crashed} crashed runs`);
});
