// Guarantees 1, 2 and 5 under real SIGKILLs: a 100,000-record job is killed at ≥ 20 random
// moments and resumed each time until it completes. Then the same on MySQL/MariaDB with fewer
// kills (8 of a 30,000-record job): each kill there costs a process start and a server round trip
// per claim and resume, and the checks are the same.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { runJob } from '../src/index.ts';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { MemoryStore } from './helpers/memory-store.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';

const EVERY = 1000;

interface RunRow {
  worker: string;
  outcome: string;
  resumed_from: string | null;
  rework: number | null;
}

/** The store the crashed job ran on, read from outside once it is done. */
interface CrashedStore {
  url: string;
  /** Every run, oldest first. */
  runs(): Promise<RunRow[]>;
  /** The state of the newest checkpoint. */
  finalState(): Promise<{ count: number; sum: number; mix: number }>;
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

test('SIGKILL at random moments: every record at least once, rework ≤ one interval, same final state', { timeout: 240_000 }, async () => {
  const store = join(tempDir('ckpt-crash-'), 'store.db');
  const read = <T>(query: (db: DatabaseSync) => T): T => {
    const db = new DatabaseSync(store);
    try {
      return query(db);
    } finally {
      db.close();
    }
  };
  await crashSuite(
    {
      url: `sqlite:${store}`,
      async runs() {
        const integrity = read((db) => db.prepare('PRAGMA integrity_check').get() as { integrity_check: string });
        assert.equal(integrity.integrity_check, 'ok');
        return read((db) => db.prepare('SELECT worker, outcome, resumed_from, rework FROM runs ORDER BY id').all() as unknown as RunRow[]);
      },
      async finalState() {
        return JSON.parse(read((db) => (db.prepare('SELECT state FROM checkpoints ORDER BY shard_id, seq DESC LIMIT 1').get() as { state: string }).state));
      },
    },
    { records: 100_000, kills: 22, minKills: 20, minMidProcessing: 10 },
  );
});

test('on MySQL/MariaDB: every record at least once, rework ≤ one interval, same final state', { timeout: 240_000, skip: await mysqlSkip() }, async () => {
  const database = await freshMysqlDatabase();
  cleanups.push(database.drop);
  await crashSuite(
    {
      url: database.url,
      runs: async () => (await mysqlRows(database.url, 'SELECT worker, outcome, resumed_from, rework FROM ckpt_runs ORDER BY id')) as unknown as RunRow[],
      async finalState() {
        const [row] = await mysqlRows(database.url, 'SELECT state FROM ckpt_checkpoints ORDER BY shard_id, seq DESC LIMIT 1');
        return JSON.parse(String(row?.state));
      },
    },
    { records: 30_000, kills: 8, minKills: 8, minMidProcessing: 4 },
  );
});

async function crashSuite(target: CrashedStore, plan: { records: number; kills: number; minKills: number; minMidProcessing: number }): Promise<void> {
  const RECORDS = plan.records;
  const KILLS = plan.kills;
  const out = join(tempDir('ckpt-crash-out-'), 'out.txt');
  const env = { CKPT_TEST_OUT: out, CKPT_TEST_SPIN_US: '40', CKPT_TEST_RECORDS: String(RECORDS) };
  const args = ['run', fixture('count-job.ts'), '--store', target.url, '--every', String(EVERY), '--quiet'];

  let kills = 0;
  let completed = false;
  for (let attempt = 0; attempt < 200 && !completed; attempt++) {
    const { child, done } = spawnCli(args, { env });
    if (kills < KILLS) {
      // Random moments: one kill in five from process start (start-up, claim, resume), the rest
      // a random time after this process has begun writing records (mid-record, mid-checkpoint).
      const fromStart = kills % 5 === 0;
      const outcome = await Promise.race([done, (fromStart ? sleep(Math.random() * 250) : outputGrows(out)).then(() => sleep(Math.random() * 250))]);
      if (outcome === undefined) {
        child.kill('SIGKILL');
        const result = await done;
        assert.equal(result.signal, 'SIGKILL');
        kills++;
        continue;
      }
      assert.equal(outcome.code, 0, `run ended early: ${outcome.stderr}`);
      completed = true;
    } else {
      const result = await done;
      assert.equal(result.code, 0, result.stderr);
      completed = true;
    }
  }
  assert.ok(completed, 'the job never completed');
  assert.ok(kills >= plan.minKills, `only ${kills} kills landed before completion; slow the job down`);

  // Which process did which record, in order.
  const byProcess = new Map<number, number[]>();
  const seen = new Uint8Array(RECORDS);
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    if (line === '') continue;
    const [pid, n] = line.split(' ').map(Number) as [number, number];
    seen[n] = 1;
    const list = byProcess.get(pid) ?? [];
    list.push(n);
    byProcess.set(pid, list);
  }
  assert.equal(seen.indexOf(0), -1, `record ${seen.indexOf(0)} was never processed`);

  // The run history: every killed process that got a shard is `crashed`, and each resume starts
  // exactly after the checkpoint it names, no further back than one interval from the crash.
  const runs = await target.runs();
  const state = await target.finalState();

  assert.equal(runs.at(-1)?.outcome, 'completed');
  assert.ok(
    runs.slice(0, -1).every((run) => run.outcome === 'crashed'),
    `outcomes: ${runs.map((run) => run.outcome).join(',')}`,
  );
  // Each run that got to report where it resumed starts right after that checkpoint. Rework is
  // measured between processes that wrote records: a process killed during start-up (after its
  // claim, before reporting a resume position or doing a record) is skipped, not counted as 0.
  const pidOf = (worker: string) => Number(worker.split(':').at(-1));
  for (const run of runs) {
    const first = byProcess.get(pidOf(run.worker))?.[0];
    if (first === undefined || run.resumed_from === null) continue;
    const resumedFrom = JSON.parse(run.resumed_from) as number | null;
    assert.equal(first, resumedFrom === null ? 0 : resumedFrom + 1, 'a resume starts right after its checkpoint');
  }
  const writers = runs.map((run) => byProcess.get(pidOf(run.worker)) ?? []).filter((done) => done.length > 0);
  let crashedWithWork = 0;
  for (let i = 1; i < writers.length; i++) {
    const lastDone = writers[i - 1]?.at(-1) as number;
    const nextFirst = writers[i]?.[0] as number;
    crashedWithWork++;
    const rework = lastDone - (nextFirst - 1);
    assert.ok(rework <= EVERY, `after a kill at record ${lastDone} the next run starts at ${nextFirst}: ${rework} records redone (> ${EVERY})`);
    assert.ok(rework >= 0, `after a kill at record ${lastDone} the next run starts at ${nextFirst}: records skipped`);
  }
  assert.ok(crashedWithWork >= plan.minMidProcessing, `only ${crashedWithWork} kills landed mid-processing`);

  // The same job, uncrashed, ends in the same state.
  // The fixture reads its record count when loaded: a module instance of its own per count.
  process.env.CKPT_TEST_RECORDS = String(RECORDS);
  const { default: job } = await import(`${pathToFileURL(fixture('count-job.ts')).href}?records=${RECORDS}`);
  delete process.env.CKPT_TEST_RECORDS;
  assert.deepEqual(state, { count: RECORDS, sum: (RECORDS * (RECORDS - 1)) / 2, mix: state.mix });
  const uncrashedState = await cleanState(job);
  assert.deepEqual(state, uncrashedState);

  // ckpt runs shows the history a person reads: the crashes and the resume positions.
  const listing = await runCli(['runs', 'count', '--store', target.url]);
  assert.equal(listing.code, 0, listing.stderr);
  const crashedRows = runs.filter((run) => run.outcome === 'crashed').length;
  assert.equal((listing.stdout.match(/ crashed /g) ?? []).length, crashedRows);
  assert.ok(crashedRows >= crashedWithWork);
}

/** Resolves once the output file has grown past its size at the call. */
async function outputGrows(path: string): Promise<void> {
  const start = sizeOf(path);
  for (let waited = 0; waited < 20_000 && sizeOf(path) <= start; waited += 5) await sleep(5);
}

function sizeOf(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

async function cleanState(job: Parameters<typeof runJob>[0]) {
  const store = new MemoryStore();
  const summary = await runJob(job, { store });
  assert.equal(summary.outcome, 'completed');
  const [instance] = await store.listInstances();
  assert.ok(instance);
  const [shard] = await store.listShards(instance.id);
  assert.ok(shard);
  const runs = await store.listRuns(instance.id);
  const lease = {
    instanceId: instance.id,
    generation: 1,
    shardId: shard.id,
    shard: shard.name,
    worker: 'x',
    token: shard.leaseToken,
    runId: runs[0]?.id ?? 0,
    leaseMs: 1,
  };
  return (await store.latest(lease)).checkpoint?.state;
}
