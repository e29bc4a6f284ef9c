// Guarantees 1 and 3 on the seed example: examples/migrate-configs.ts (the seed's own job) SIGKILLed at random moments and
// rerun until it completes. Every source row is in the target exactly once with the source's
// values; and where the target is the store's database (ctx.tx), every row was also *written*
// exactly once. Where it is another database (upserts), rows after the last checkpoint are
// written again after a kill: the test reports how many, and checks only that the copy is exact.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot, spawnCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const ROWS = 4000;
const KILLS = 5;
const example = join(repoRoot, 'examples', 'migrate-configs.ts');
type Rows = Record<string, unknown>[];
const skip = await mysqlSkip();

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/** A source database with ROWS configuration rows (the example's own seed). */
async function source(): Promise<{ url: string; rows: Rows }> {
  const database = await freshMysqlDatabase('ckpt_src');
  cleanups.push(database.drop);
  const seeded = await spawnCli([
    'run',
    example,
    '--store',
    'memory:',
    '--param',
    `from=${database.url}`,
    '--param',
    'to=sqlite::memory:',
    '--param',
    `seed=${ROWS}`,
  ]).done;
  assert.equal(seeded.code, 0, seeded.stderr);
  return { url: database.url, rows: await mysqlRows(database.url, 'SELECT id, name, value FROM configs ORDER BY id') };
}

/** Runs the example, SIGKILLs it KILLS times once it has copied a few more rows, then lets it finish. */
async function killAndRerun(args: string[], copied: () => Promise<number>): Promise<void> {
  const env = { CONFIGS_PACE: '1200' };
  let kills = 0;
  for (let attempt = 0; attempt < 40; attempt++) {
    // The run after the last kill goes at full speed: the pace only gives kills time to land.
    const run = spawnCli(args, { env: kills < KILLS ? env : {} });
    if (kills < KILLS) {
      // One kill in five at a random moment of start-up (claim, resume); the others a random
      // moment after this process has copied rows (mid-record, mid-page, mid-checkpoint).
      if (kills % 5 === 0) await sleep(100 + Math.random() * 400);
      else {
        const before = await copied();
        const deadline = Date.now() + 20_000;
        while ((await copied()) <= before && Date.now() < deadline) await sleep(20);
        await sleep(Math.random() * 300);
      }
      const early = await Promise.race([run.done, sleep(0).then(() => undefined)]);
      if (early === undefined) {
        run.child.kill('SIGKILL');
        assert.equal((await run.done).signal, 'SIGKILL');
        kills++;
        continue;
      }
      assert.equal(early.code, 0, early.stderr);
      assert.fail(`the job completed after only ${kills} kills; slow it down`);
    }
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    return;
  }
  assert.fail('the job never completed');
}

function sameRows(target: Rows, expected: Rows): void {
  const key = (row: Record<string, unknown>) => `${Number(row.id)}|${String(row.name)}|${String(row.value)}`;
  assert.equal(target.length, expected.length, 'one target row per source row');
  assert.deepEqual(target.map(key), expected.map(key), "the target holds exactly the source's rows");
}

test('checkpointed on MySQL, copied into SQLite: killed and rerun, the copy is exact (upserts, rows may be rewritten)', {
  timeout: 180_000,
  skip,
}, async (t) => {
  const { url, rows } = await source();
  const target = join(tempDir('ckpt-configs-'), 'configs.db');
  const read = (sql: string): Rows => {
    const db = new DatabaseSync(target);
    try {
      db.exec('PRAGMA busy_timeout = 5000');
      return db.prepare(sql).all() as Rows;
    } catch {
      return [];
    } finally {
      db.close();
    }
  };
  const args = ['run', example, '--store', url, '--param', `from=${url}`, '--param', `to=sqlite:${target}`, '--every', '200', '--quiet'];
  await killAndRerun(args, async () => Number(read('SELECT count(*) AS c FROM configs')[0]?.c ?? 0));

  sameRows(read('SELECT id, name, value FROM configs ORDER BY id'), rows);
  const rewritten = Number(read('SELECT count(*) AS c FROM configs WHERE writes > 1')[0]?.c);
  const crashed = Number((await mysqlRows(url, "SELECT count(*) AS c FROM ckpt_runs WHERE outcome = 'crashed'"))[0]?.c);
  assert.ok(crashed >= KILLS - 1, `the kills show as crashed runs (${crashed})`);
  t.diagnostic(`${KILLS} SIGKILLs, ${crashed} crashed runs; ${rewritten} of ${ROWS} rows were written more than once (at-least-once writes, exact copy)`);
});

test('checkpointed on the target (PostgreSQL) through ctx.tx: killed and rerun, every row written exactly once', { timeout: 180_000, skip }, async (t) => {
  const { url, rows } = await source();
  const target = await freshDatabase();
  cleanups.push(target.drop);
  const query = (sql: string) => withPool(target.url, async (pool) => (await pool.query(sql)).rows).catch((): Rows => []);
  const args = ['run', example, '--store', `${target.url}?schema=ckpt`, '--param', `from=${url}`, '--param', 'to=store', '--every', '200', '--quiet'];
  await killAndRerun(args, async () => Number((await query('SELECT count(*) AS c FROM configs'))[0]?.c ?? 0));

  sameRows(await query('SELECT id, name, value FROM configs ORDER BY id'), rows);
  const writes = await query('SELECT writes, count(*) AS c FROM configs GROUP BY writes ORDER BY writes');
  assert.deepEqual(
    writes.map((row) => [Number(row.writes), Number(row.c)]),
    [[1, ROWS]],
    'every row was written once: its write committed with the checkpoint that covers it',
  );
  const crashed = Number((await query("SELECT count(*) AS c FROM ckpt.runs WHERE outcome = 'crashed'"))[0]?.c);
  assert.ok(crashed >= KILLS - 1, `the kills show as crashed runs (${crashed})`);
  t.diagnostic(`${KILLS} SIGKILLs, ${crashed} crashed runs; no row written twice`);
});
