// Guarantee 3 (ctx.tx writes exactly once), on every SQL store: concurrency 8, one row per record
// through ctx.tx (with per-record savepoints: some records fail their first attempt after
// writing), random SIGKILLs; afterwards exactly one row per record, no duplicate, no gap.
// SQLite: 100,000 records and ≥ 32 kills, one in five during startup. PostgreSQL and MySQL: 20,000
// records and 10 kills, to keep npm test short (each kill costs a process start and a resume).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fixture, runCli, spawnCli } from './helpers/cli.ts';
import { perStore, quoteFor, sqlStores } from './helpers/sql-stores.ts';

/** A small deterministic generator, so a failing crash schedule can be replayed with CRASH_SEED. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

// The three stores at once: each has its own database, and no run can finish the job before its
// kill however late it comes (TX_ROWS_STALL_AFTER), so a loaded machine only makes each kill later.
const skips = new Map(await Promise.all(sqlStores.map(async (store) => [store, await store.skip()] as const)));
describe('each store', { concurrency: 3 }, () => {
  for (const store of sqlStores) {
    const records = perStore(store.name, { sqlite: 100_000, postgres: 20_000, mysql: 20_000 });
    /** SIGKILLs that land after the run made progress; kills during startup come on top. */
    const kills = perStore(store.name, { sqlite: 32, postgres: 10, mysql: 10 });
    /** How often a kill lands at a random moment of startup instead of after a checkpoint. */
    const startupKills = perStore(store.name, { sqlite: 0.2, postgres: 0, mysql: 0 });
    const namespace = perStore(store.name, { sqlite: undefined, postgres: 'ckpt', mysql: 'ckpt_' });

    test(`ctx.tx rows exactly once on ${store.title} after ${kills} random SIGKILLs (concurrency 8, ${records} records)`, {
      timeout: perStore(store.name, { sqlite: 120_000, postgres: 120_000, mysql: 180_000 }),
      skip: skips.get(store),
    }, async (t) => {
      const database = await store.database();
      cleanups.push(() => database.drop());
      await database.rows(
        perStore(store.name, {
          sqlite: 'CREATE TABLE "out" (n INTEGER NOT NULL, shard TEXT)',
          postgres: 'CREATE TABLE "out" (n INTEGER NOT NULL, shard TEXT)',
          mysql: 'CREATE TABLE "out" (n INTEGER NOT NULL, shard VARCHAR(64))',
        }),
      );
      await database.rows('CREATE TABLE progress (id INTEGER PRIMARY KEY, done INTEGER NOT NULL)');
      await database.rows('INSERT INTO progress VALUES (1, 0)');
      const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
      const random = seededRandom(seed);
      const args = ['run', fixture('tx-rows.ts'), '--store', database.store(namespace), '--param', `count=${records}`];

      let killed = 0;
      let midRunKills = 0;
      while (midRunKills < kills) {
        const { child, done } = spawnCli(args, { env: { TX_ROWS_STALL_AFTER: '2400' } });
        // Kill after a random number of checkpoints plus a random few ms (lands anywhere: in a
        // record, between records, inside a commit), or now and then at a random moment of startup.
        const early = random() < startupKills;
        const afterCheckpoints = 1 + Math.floor(random() * 3);
        const extraMs = Math.floor(random() * 15);
        let seen = 0;
        let timer: NodeJS.Timeout | undefined;
        if (early) timer = setTimeout(() => child.kill('SIGKILL'), 50 + Math.floor(random() * 300));
        // Backstop: a stalled child (see TX_ROWS_STALL_AFTER) is killed even if its output came late.
        const backstop = setTimeout(() => child.kill('SIGKILL'), perStore(store.name, { sqlite: 10_000, postgres: 15_000, mysql: 15_000 }));
        child.stdout?.on('data', (chunk: Buffer) => {
          seen += chunk.toString().split('"type":"checkpoint"').length - 1;
          if (!early && seen >= afterCheckpoints && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), extraMs);
        });
        const result = await done;
        clearTimeout(timer);
        clearTimeout(backstop);
        assert.equal(
          result.signal,
          'SIGKILL',
          `run ended by itself before ${kills} kills (seed ${seed}, kills ${killed}): exit ${result.code} ${result.stderr}`,
        );
        killed++;
        if (seen > 0) midRunKills++;
      }
      const final = await runCli([...args, '--quiet']);
      assert.equal(final.code, 0, `final run (seed ${seed}): ${final.stderr}`);

      const [rows = {}] = await database.rows(
        quoteFor(store.name, 'SELECT count(*) AS total, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi FROM "out"'),
      );
      const [progress = {}] = await database.rows('SELECT done FROM progress');
      const runs = database.table('runs', namespace);
      const [crashed = {}] = await database.rows(`SELECT count(*) AS n FROM ${runs} WHERE outcome = 'crashed'`);
      const [resumed = {}] = await database.rows(`SELECT count(*) AS n FROM ${runs} WHERE start_processed > 0`);
      assert.deepEqual(
        { total: Number(rows.total), distinct: Number(rows.distinct_n), lo: Number(rows.lo), hi: Number(rows.hi) },
        { total: records, distinct: records, lo: 0, hi: records - 1 },
        `seed ${seed}: rows must be exactly 0..${records - 1} once each`,
      );
      assert.equal(Number(progress.done), records, `seed ${seed}: the second write of each record landed exactly once`);
      t.diagnostic(`seed ${seed}: ${killed} SIGKILLs (${midRunKills} after progress), ${crashed.n} crashed runs, ${resumed.n} resumed runs`);
      assert.ok(
        Number(crashed.n) >= midRunKills,
        `every kill after progress left a crashed run: ${crashed.n} crashed, ${midRunKills} kills (${killed} in all)`,
      );
      assert.ok(Number(resumed.n) >= kills / 2, `runs resumed from a checkpoint: ${resumed.n}`);
    });
  }
});
