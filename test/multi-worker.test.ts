// Guarantees 1, 3 and 5 with many workers: four `ckpt run` processes share one instance of 200 shards; two are
// SIGKILLed mid-way and never restarted; the other two reclaim the dead ones' shards and finish
// every one. Each record writes one row through ctx.tx: every row is there exactly once. The
// four appended to one event log at once, and it is still one intact hash chain.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli } from './helpers/cli.ts';
import type { ShardStoreProbe } from './helpers/shard-output.ts';
import { perStore, sqlStores } from './helpers/sql-stores.ts';

const SHARDS = 200;
/** Why each store is skipped here (a test's options are set before its describe runs). */
const skips = new Map(await Promise.all(sqlStores.map(async (store) => [store, await store.skip()] as const)));
const RECORDS = 40;
const TOTAL = SHARDS * RECORDS;

async function fourWorkersTwoKilled(probe: ShardStoreProbe, leaseMs: number): Promise<void> {
  await probe.createOutput();
  const env = { CKPT_TEST_SHARDS: String(SHARDS), CKPT_TEST_RECORDS: String(RECORDS), CKPT_TEST_SPIN_US: '800', CKPT_TEST_SQL: probe.sql };
  const args = ['run', fixture('shard-job.ts'), '--store', probe.url, '--lease-ms', String(leaseMs), '--quiet'];
  const workers = Array.from({ length: 4 }, () => spawnCli(args, { env }));

  // Mid-way (a fifth of the rows in), at a moment when two workers each hold a shard: kill those two.
  const deadline = Date.now() + 60_000;
  let victims: typeof workers = [];
  for (;;) {
    const rows = await probe.rowCount();
    assert.ok(Date.now() < deadline, `only ${rows} rows after 60 s`);
    if (rows >= TOTAL / 5) {
      const holding = new Set((await probe.holders()).map((worker) => worker.split(':').at(-1)));
      victims = workers.filter((worker) => holding.has(String(worker.child.pid)));
      if (victims.length >= 2) break;
    }
    await sleep(10);
  }
  const [first, second] = victims as [(typeof workers)[0], (typeof workers)[0]];
  const survivors = workers.filter((worker) => worker !== first && worker !== second);
  first.child.kill('SIGKILL');
  second.child.kill('SIGKILL');
  const killed = await Promise.all([first.done, second.done]);
  assert.deepEqual(
    killed.map((result) => result.signal),
    ['SIGKILL', 'SIGKILL'],
    'both were still running when killed',
  );
  const rowsAtKill = await probe.rowCount();
  assert.ok(rowsAtKill < TOTAL * 0.8, `the kill came too late (${rowsAtKill} of ${TOTAL} rows); slow the job down`);

  const finished = await Promise.all(survivors.map((worker) => worker.done));
  for (const result of finished) assert.equal(result.code, 0, `a survivor failed: ${result.stderr}`);

  const output = await probe.output();
  assert.deepEqual(output.doubled.slice(0, 5), [], `${output.doubled.length} (shard, record) pairs written more than once`);
  assert.equal(output.distinct, TOTAL, 'every record of every shard has its row');
  assert.equal(output.rows, TOTAL);
  assert.deepEqual(await probe.shardStatuses(), { completed: SHARDS });

  // The dead workers held shards when they died; those runs ended crashed and the survivors
  // completed the same shards afterwards.
  const runs = await probe.runs();
  const killedPids = [first.child.pid, second.child.pid].map(String);
  const deadRuns = runs.filter((run) => killedPids.includes(run.worker.split(':').at(-1) ?? ''));
  const crashed = deadRuns.filter((run) => run.outcome === 'crashed');
  assert.ok(crashed.length >= 1, `no run of a killed worker was found crashed: ${JSON.stringify(deadRuns.slice(-4))}`);
  // A run may also have ended 'lost' before its worker was killed: on a loaded machine a live
  // worker's heartbeat can miss the 3 s lease, a survivor takes the shard and the fence ends it.
  assert.ok(
    deadRuns.every((run) => run.outcome === 'crashed' || run.outcome === 'completed' || run.outcome === 'lost'),
    `runs of killed workers: ${[...new Set(deadRuns.map((run) => run.outcome))].join(',')}`,
  );
  for (const run of crashed) {
    const later = runs.find((other) => other.shard === run.shard && other.id > run.id && other.outcome === 'completed');
    assert.ok(later && !killedPids.includes(later.worker.split(':').at(-1) ?? ''), `shard ${run.shard} was not finished by a survivor`);
  }

  // Four workers appended to one instance's event log at once: still one valid chain.
  const audit = await runCli(['audit', 'shards', '--store', probe.url, '--verify']);
  assert.equal(audit.code, 0, audit.stderr);
  const chained = Number(/: ([\d,]+) events, chain intact/.exec(audit.stdout)?.[1]?.replaceAll(',', ''));
  assert.ok(chained >= 2 * SHARDS, `${audit.stdout.trim()}: a start and an end at least per shard`);
}

describe('four workers, two SIGKILLed, 200 shards', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  for (const store of sqlStores) {
    test(`on ${perStore(store.name, { sqlite: 'one SQLite file', postgres: 'PostgreSQL', mysql: 'MySQL/MariaDB' })}`, {
      timeout: 180_000,
      skip: skips.get(store),
    }, async () => {
      const database = await store.database();
      cleanups.push(() => database.drop());
      await fourWorkersTwoKilled(database.probe(), perStore(store.name, { sqlite: 3000, postgres: 1500, mysql: 1500 }));
    });
  }
});
