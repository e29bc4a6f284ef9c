// ctx.tx on MySQL/MariaDB under concurrency 8 with per-record savepoints (some records fail their
// first attempt after writing) and random SIGKILLs: afterwards every row exactly once. Fewer
// records and kills than the SQLite suite (10 kills of a 20,000-record job, the numbers of the
// PostgreSQL variant), to keep npm test short: each kill costs a process start and a resume.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fixture, runCli, spawnCli } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';

const RECORDS = 20_000;
const KILLS = 10;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

test(`ctx.tx rows exactly once on MySQL after ${KILLS} SIGKILLs (concurrency 8, ${RECORDS} records)`, {
  timeout: 180_000,
  skip: await mysqlSkip(),
}, async (t) => {
  const database = await freshMysqlDatabase();
  cleanups.push(database.drop);
  await mysqlRows(database.url, 'CREATE TABLE `out` (n INTEGER NOT NULL, shard VARCHAR(64))');
  await mysqlRows(database.url, 'CREATE TABLE progress (id INTEGER PRIMARY KEY, done INTEGER NOT NULL)');
  await mysqlRows(database.url, 'INSERT INTO progress VALUES (1, 0)');
  const args = ['run', fixture('tx-rows.ts'), '--store', `${database.url}?prefix=ckpt_`, '--param', `count=${RECORDS}`];

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

  const [rows = {}] = await mysqlRows(database.url, 'SELECT count(*) AS total, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi FROM `out`');
  const done = Number((await mysqlRows(database.url, 'SELECT done FROM progress'))[0]?.done);
  const crashed = Number((await mysqlRows(database.url, "SELECT count(*) AS n FROM ckpt_runs WHERE outcome = 'crashed'"))[0]?.n);
  assert.deepEqual(
    { total: Number(rows.total), distinct: Number(rows.distinct_n), lo: Number(rows.lo), hi: Number(rows.hi) },
    { total: RECORDS, distinct: RECORDS, lo: 0, hi: RECORDS - 1 },
  );
  assert.equal(done, RECORDS, 'the second write of each record landed exactly once');
  assert.ok(crashed >= KILLS, `every kill left a crashed run (${crashed})`);
  t.diagnostic(`${kills} SIGKILLs, ${crashed} crashed runs`);
});
