// Must-show 1: 100,000 records, concurrency 8, one row per record through ctx.tx, ≥ 30 random
// SIGKILLs; afterwards exactly 100,000 rows, no duplicate, no gap.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';

/** A small deterministic generator, so a failing crash schedule can be replayed with CRASH_SEED. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const RECORDS = 100_000;
/** SIGKILLs that land after the run made progress; kills during startup come on top. */
const KILLS = 32;

test('ctx.tx writes exist exactly once after ≥ 32 random SIGKILLs (concurrency 8, 100,000 records)', { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  const dbPath = join(dir, 'store.db');
  const setup = new DatabaseSync(dbPath);
  setup.exec(
    'CREATE TABLE out (n INTEGER NOT NULL, shard TEXT); CREATE TABLE progress (id INTEGER PRIMARY KEY, done INTEGER NOT NULL); INSERT INTO progress VALUES (1, 0)',
  );
  setup.close();
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
  const random = seededRandom(seed);
  const args = ['run', fixture('tx-rows.ts'), '--store', `sqlite:${dbPath}`, '--param', `count=${RECORDS}`];

  let kills = 0;
  let midRunKills = 0;
  while (midRunKills < KILLS) {
    const { child, done } = spawnCli(args, { env: { TX_ROWS_STALL_AFTER: '2400' } });
    // Kill after a random number of checkpoints plus a random few ms (lands anywhere: in a
    // record, between records, inside a commit), or, one time in five, at a random moment of startup.
    const early = random() < 0.2;
    const afterCheckpoints = 1 + Math.floor(random() * 3);
    const extraMs = Math.floor(random() * 15);
    let seen = 0;
    let timer: NodeJS.Timeout | undefined;
    if (early) timer = setTimeout(() => child.kill('SIGKILL'), 50 + Math.floor(random() * 300));
    // Backstop: a stalled child (see TX_ROWS_STALL_AFTER) is killed even if its output came late.
    const backstop = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString().split('"type":"checkpoint"').length - 1;
      if (!early && seen >= afterCheckpoints && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), extraMs);
    });
    const result = await done;
    clearTimeout(timer);
    clearTimeout(backstop);
    if (result.signal === 'SIGKILL') {
      kills++;
      if (seen > 0) midRunKills++;
    } else {
      assert.fail(`run ended by itself before ${KILLS} kills (seed ${seed}, kills ${kills}): exit ${result.code} ${result.stderr}`);
    }
  }
  const final = await runCli([...args, '--quiet']);
  assert.equal(final.code, 0, `final run (seed ${seed}): ${final.stderr}`);

  const db = new DatabaseSync(dbPath, { readOnly: true });
  const rows = db.prepare('SELECT count(*) AS total, count(DISTINCT n) AS distinctN, min(n) AS lo, max(n) AS hi FROM out').get() as Record<string, number>;
  const progress = db.prepare('SELECT done FROM progress').get() as { done: number };
  const crashed = db.prepare("SELECT count(*) AS n FROM runs WHERE outcome = 'crashed'").get() as { n: number };
  const resumed = db.prepare('SELECT count(*) AS n FROM runs WHERE start_processed > 0').get() as { n: number };
  db.close();
  assert.deepEqual(
    { total: rows.total, distinctN: rows.distinctN, lo: rows.lo, hi: rows.hi },
    { total: RECORDS, distinctN: RECORDS, lo: 0, hi: RECORDS - 1 },
    `seed ${seed}: rows must be exactly 0..${RECORDS - 1} once each`,
  );
  assert.equal(progress.done, RECORDS, `seed ${seed}: the second write of each record landed exactly once`);
  t.diagnostic(`seed ${seed}: ${kills} SIGKILLs (${midRunKills} after progress), ${crashed.n} crashed runs, ${resumed.n} resumed runs`);
  assert.ok(crashed.n >= midRunKills, `every kill after progress left a crashed run: ${crashed.n} crashed, ${midRunKills} kills (${kills} in all)`);
  assert.ok(resumed.n >= KILLS / 2, `runs resumed from a checkpoint: ${resumed.n}`);
});
