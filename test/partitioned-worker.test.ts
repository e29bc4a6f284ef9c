// Guarantees 3 and 5 across a network partition: a worker cut off from the database mid-chunk, silently and for good (a TCP
// proxy that stops forwarding without closing either socket), holds row locks in its open
// ctx.tx transaction. The server must end that session within a lease of its silence, and the
// shard's next owner must wait for those rows no longer than that (and not as an outage), so the
// job completes with no operator action, every row exactly once. On PostgreSQL and MariaDB.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, spawnCli } from './helpers/cli.ts';
import { perStore, sqlStores } from './helpers/sql-stores.ts';
import { startTcpProxy } from './helpers/tcp-proxy.ts';

const RECORDS = 400;
const LEASE_MS = 5000;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

// Both servers at once: each test is mostly waiting (a lease of silence, 20 ms records), and each
// has its own database and proxy.
const skips = new Map(await Promise.all(sqlStores.map(async (store) => [store, await store.skip()] as const)));
describe('each store', { concurrency: 2 }, () => {
  // The SQL servers a worker reaches over the network (a SQLite file cannot be partitioned away).
  for (const store of sqlStores.filter((candidate) => candidate.name !== 'sqlite')) {
    test(`${store.name}: a worker partitioned mid-chunk past its lease is taken over; the job completes, every row once`, {
      skip: skips.get(store),
    }, async (t) => {
      const database = await store.database();
      cleanups.push(() => database.drop());
      const sql = (text: string) => database.rows(text);
      await sql(
        perStore(store.name, {
          sqlite: '',
          postgres: 'CREATE TABLE keyed (n INTEGER PRIMARY KEY, pid INTEGER NOT NULL)',
          mysql: 'CREATE TABLE keyed (n INT PRIMARY KEY, pid INT NOT NULL) ENGINE=InnoDB',
        }),
      );
      const url = database.store();
      const target = new URL(url);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
      cleanups.push(() => proxy.close());
      const viaProxy = new URL(url);
      viaProxy.port = String(proxy.port);
      const committed = async () => Number((await sql('SELECT count(*) AS n FROM keyed'))[0]?.n);
      const args = (store: string) => ['run', fixture('tx-keys.ts'), '--store', store, '--lease-ms', String(LEASE_MS), '--json'];
      const env = { CKPT_TEST_RECORDS: String(RECORDS), CKPT_TEST_SLEEP_MS: '20' };

      const cutOff = spawnCli(args(viaProxy.toString()), { env });
      cleanups.push(async () => {
        cutOff.child.kill('SIGKILL');
      });
      // Cut just after a checkpoint (every 50 records, 20 ms each): the open chunk then holds
      // about 15 rows, locked, and its next checkpoint is most of a second away.
      let seen = 0;
      const deadline = Date.now() + 30_000;
      for (;;) {
        assert.ok(Date.now() < deadline, 'the first worker never committed two checkpoints');
        const now = await committed();
        if (now > seen && seen >= 50) break;
        seen = now;
        await sleep(10);
      }
      await sleep(300);
      proxy.cut();
      const rowsAtCut = await committed();

      // The next owner connects directly, waits for the lease (--wait) and resumes.
      const started = Date.now();
      const successor = await spawnCli([...args(url), '--wait'], { env }).done;
      const tookMs = Date.now() - started;
      assert.equal(successor.code, 0, `the successor must complete: ${successor.stderr}${successor.stdout.split('\n').slice(-5).join('\n')}`);
      const rows = await sql('SELECT count(*) AS n, count(DISTINCT n) AS d, min(n) AS lo, max(n) AS hi FROM keyed');
      assert.deepEqual(
        rows.map((row) => [Number(row.n), Number(row.d), Number(row.lo), Number(row.hi)]),
        [[RECORDS, RECORDS, 0, RECORDS - 1]],
      );
      t.diagnostic(`cut at ${rowsAtCut} rows committed; the successor finished in ${tookMs} ms`);
    });
  }
});
