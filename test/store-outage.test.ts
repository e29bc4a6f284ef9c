// A store's server stopped for 5 s in the middle of a run and started again (PostgreSQL, MariaDB):
// the workers retry with backoff, carry on from their checkpoints and finish; every row exactly
// once. Down longer than --store-retry-ms, they exit 1 with one line and a rerun completes. These
// tests stop a server, so each store starts one of its own instead of sharing the suite's.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, isOneLineError, spawnCli } from './helpers/cli.ts';
import { type OwnServer, restartableStores } from './helpers/sql-stores.ts';

const SHARDS = 20;
const RECORDS = 150;

// The two servers' outages at once: each store has its own server, and most of a test is waiting
// (a server starting, 5 s down, workers backing off). Within a store its two tests stay in order.
const skips = new Map(await Promise.all(restartableStores.map(async (store) => [store, await store.skip()] as const)));
describe('store outages', { concurrency: 2 }, () => {
  for (const store of restartableStores) {
    describe(`${store.title} outage`, { skip: skips.get(store), concurrency: 1 }, () => {
      let server: OwnServer | undefined;
      after(async () => {
        await server?.destroy();
      });

      test(`${store.title} stopped for 5 s mid-run: the workers carry on, output exactly once`, { timeout: 180_000 }, async (t) => {
        server = await store.startServer();
        const probe = server.database.probe(store.name === 'postgres' ? 'ckpt' : 'ckpt_');
        await probe.createOutput();
        const env = { CKPT_TEST_SHARDS: String(SHARDS), CKPT_TEST_RECORDS: String(RECORDS), CKPT_TEST_SPIN_US: '1500' };
        const args = ['run', fixture('shard-job.ts'), '--store', probe.url, '--lease-ms', '2000', '--store-retry-ms', '60000'];
        const workers = [spawnCli(args, { env }), spawnCli(args, { env })];

        const deadline = Date.now() + 60_000;
        while ((await probe.rowCount()) < (SHARDS * RECORDS) / 4) {
          assert.ok(Date.now() < deadline, 'the run did not get a quarter done in 60 s');
          await sleep(50);
        }
        await server.stop();
        const stoppedAt = Date.now();
        await sleep(5000);
        await server.start();
        t.diagnostic(`${store.title} was down for ${Date.now() - stoppedAt} ms`);
        const rowsAfterRestart = await probe.rowCount();
        assert.ok(rowsAfterRestart < SHARDS * RECORDS, 'the outage came before the end of the run');

        const results = await Promise.all(workers.map((worker) => worker.done));
        for (const result of results) assert.equal(result.code, 0, `a worker failed: ${result.stderr}`);
        const retries = results.flatMap((result) => result.stdout.split('\n').filter((line) => line.includes('"store:retry"')));
        assert.ok(retries.length > 0, 'the workers noticed the outage and retried');
        const lostToStore = results.flatMap((result) => result.stdout.split('\n').filter((line) => line.includes('"shard:lost"')));
        t.diagnostic(`${retries.length} store retries, ${lostToStore.length} shard runs resumed after the outage`);

        const output = await probe.output();
        assert.deepEqual(output.doubled.slice(0, 5), [], `${output.doubled.length} records written twice`);
        assert.equal(output.distinct, SHARDS * RECORDS);
        assert.equal(output.rows, SHARDS * RECORDS);
        assert.deepEqual(await probe.shardStatuses(), { completed: SHARDS });
      });

      test(`${store.title} down longer than --store-retry-ms: exit 1 with one line, the rerun completes exactly once`, { timeout: 120_000 }, async (t) => {
        server ??= await store.startServer();
        const probe = server.database.probe(store.name === 'postgres' ? 'ckpt_giveup' : 'ckpt_giveup_');
        await probe.createOutput().catch(() => undefined);
        // This test shares the server (and its `out` table) with the one above: start it empty.
        await server.database.rows('TRUNCATE "out"');
        const env = { CKPT_TEST_SHARDS: '4', CKPT_TEST_RECORDS: '400', CKPT_TEST_SPIN_US: '1500' };
        const args = ['run', fixture('shard-job.ts'), '--store', probe.url, '--lease-ms', '2000', '--store-retry-ms', '1500', '--quiet'];
        const worker = spawnCli(args, { env });
        while ((await probe.rowCount()) < 200) await sleep(50);
        await server.stop();
        const result = await worker.done;
        await server.start();
        assert.equal(result.code, 1, result.stderr);
        assert.ok(isOneLineError(result.stderr), result.stderr);
        t.diagnostic(result.stderr.trim());
        assert.match(result.stderr, /stayed unreachable for \d+ s .*run again to resume/);

        const rerun = await spawnCli(args, { env }).done;
        assert.equal(rerun.code, 0, rerun.stderr);
        const output = await probe.output();
        assert.deepEqual(output.doubled.slice(0, 5), []);
        assert.equal(output.distinct, 1600);
        assert.equal(output.rows, 1600);
      });
    });
  }
});
