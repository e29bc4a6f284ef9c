// Buffered ctx.tx writes (insert) under concurrency 8 and random SIGKILLs that land before the
// rows are sent, between sent rows and their commit, or inside the commit: afterwards every
// output row exists exactly once, on SQLite, PostgreSQL and MySQL/MariaDB. Each process stalls after 9,000
// records (one checkpoint of 6,000 and part of the next), so none runs the job to its end.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

/** The fixture's six extra columns (its rows are 8 wide, so 5,000 of them fill the write buffer). */
const WIDE = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'].map((column) => `${column} INTEGER`).join(', ');

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

interface Backend {
  name: string;
  /** Why the backend is not tested here, if it is not (no MySQL server to be found). */
  skip?: () => Promise<string | false>;
  records: number;
  kills: number;
  /** Creates the output table; returns the store URL and a reader of what was written. */
  prepare(): Promise<{ store: string; check(): Promise<{ total: number; distinct: number; lo: number; hi: number; strays: number }> }>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    records: 110_000,
    kills: 16,
    async prepare() {
      const path = join(tempDir(), 'store.db');
      const setup = new DatabaseSync(path);
      setup.exec(`CREATE TABLE out (n INTEGER NOT NULL, shard TEXT, ${WIDE})`);
      setup.close();
      return {
        store: `sqlite:${path}`,
        async check() {
          const db = new DatabaseSync(path, { readOnly: true });
          try {
            return db
              .prepare(
                "SELECT count(*) AS total, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi, (SELECT count(*) FROM out WHERE shard = 'stray') AS strays FROM out WHERE shard <> 'stray'",
              )
              .get() as never;
          } finally {
            db.close();
          }
        },
      };
    },
  },
  {
    name: 'PostgreSQL',
    records: 70_000,
    kills: 10,
    async prepare() {
      const database = await freshDatabase();
      cleanups.push(database.drop);
      await withPool(database.url, (pool) => pool.query(`CREATE TABLE out (n INTEGER NOT NULL, shard TEXT, ${WIDE})`));
      return {
        store: `${database.url}?schema=ckpt`,
        check: () =>
          withPool(database.url, async (pool) => {
            const row = (
              await pool.query(
                "SELECT count(*) AS total, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi, (SELECT count(*) FROM out WHERE shard = 'stray') AS strays FROM out WHERE shard <> 'stray'",
              )
            ).rows[0] as Record<string, unknown>;
            return Object.fromEntries(Object.entries(row).map(([key, value]) => [key, Number(value)])) as never;
          }),
      };
    },
  },
  {
    name: 'MySQL',
    records: 70_000,
    kills: 10,
    skip: mysqlSkip,
    async prepare() {
      const database = await freshMysqlDatabase();
      cleanups.push(database.drop);
      await mysqlRows(database.url, `CREATE TABLE \`out\` (n INTEGER NOT NULL, shard VARCHAR(64), ${WIDE})`);
      return {
        store: `${database.url}?prefix=ckpt_`,
        async check() {
          const [row] = await mysqlRows(
            database.url,
            "SELECT count(*) AS total, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi, (SELECT count(*) FROM `out` WHERE shard = 'stray') AS strays FROM `out` WHERE shard <> 'stray'",
          );
          return Object.fromEntries(Object.entries(row ?? {}).map(([key, value]) => [key, Number(value)])) as never;
        },
      };
    },
  },
];

for (const backend of backends) {
  const skip = (await backend.skip?.()) ?? false;
  test(`${backend.name}: buffered ctx.tx rows exactly once after ${backend.kills} SIGKILLs between their writes and their commit (concurrency 8)`, {
    timeout: 240_000,
    skip,
  }, async (t) => {
    const { store, check } = await backend.prepare();
    const args = ['run', fixture('tx-batch-rows.ts'), '--store', store, '--param', `count=${backend.records}`];
    let kills = 0;
    let beforeFirstCheckpoint = 0;
    while (kills < backend.kills) {
      const { child, done } = spawnCli(args, { env: { TX_ROWS_STALL_AFTER: '9000' } });
      // Before the first checkpoint (rows buffered, 5,000 of them sent early, or the commit under
      // way) or after it (the next chunk buffered): 0–60 ms past the run's start or the checkpoint.
      const afterCheckpoints = Math.floor(Math.random() * 2);
      let seen = 0;
      let started = false;
      let timer: NodeJS.Timeout | undefined;
      const backstop = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        const text = chunk.toString();
        started ||= text.includes('"type":"run:');
        seen += text.split('"type":"checkpoint"').length - 1;
        if (started && seen >= afterCheckpoints && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 60));
      });
      const result = await done;
      clearTimeout(timer);
      clearTimeout(backstop);
      assert.equal(result.signal, 'SIGKILL', `a run ended by itself: exit ${result.code} ${result.stderr}`);
      kills++;
      if (seen === 0) beforeFirstCheckpoint++;
    }
    const final = await runCli([...args, '--quiet']);
    assert.equal(final.code, 0, final.stderr);
    const rows = await check();
    assert.deepEqual(
      {
        total: Number(rows.total),
        distinct: Number((rows as unknown as { distinct_n: number }).distinct_n),
        lo: Number(rows.lo),
        hi: Number(rows.hi),
        strays: Number(rows.strays),
      },
      { total: backend.records, distinct: backend.records, lo: 0, hi: backend.records - 1, strays: 0 },
      'every record once, and no row of a failed attempt',
    );
    t.diagnostic(`${kills} SIGKILLs, ${beforeFirstCheckpoint} of them before the process's first checkpoint`);
  });
}
