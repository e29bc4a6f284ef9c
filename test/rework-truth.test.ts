// Guarantee 2 as reported: the rework `ckpt runs` reports after a SIGKILL is never understated.
// A job is SIGKILLed 10 times, each time ≥ 1,000 records past its checkpoint; for each crashed
// run, the records a later run redid (counted here from the job's own output) must be ≤ the
// rework `ckpt runs --json` reports for it, and that report ≤ the truth plus one progress-mark
// step. On SQLite with and without ctx.tx (with it, the store's connection sits inside the job's
// open transaction, where the old heartbeat mark died with the process), and on PostgreSQL.
import assert from 'node:assert/strict';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { freshDatabase } from './helpers/postgres.ts';

const KILLS = 10;
const EVERY = 5000;

interface RunRow {
  id: number;
  worker: string;
  outcome: string;
  redone?: { records: number; atMost: boolean; markStep: number; byRun: number };
}

async function killTenTimes(t: { diagnostic(message: string): void }, store: string, extraEnv: Record<string, string>): Promise<void> {
  const dir = tempDir('ckpt-rework-');
  const out = join(dir, 'out.txt');
  const env = { CKPT_TEST_OUT: out, CKPT_TEST_SPIN_US: '30', CKPT_TEST_RECORDS: '1000000', ...extraEnv };
  const args = ['run', fixture('rework-job.ts'), '--store', store, '--json'];
  for (let kill = 0; kill < KILLS; kill++) {
    const { child, done } = spawnCli(args, { env });
    // The last checkpoint this process reported: records up to it are safe, the rest are redone.
    let checkpointed = -1;
    child.stdout?.on('data', (chunk: Buffer) => {
      for (const match of chunk.toString().matchAll(/"type":"checkpoint".*?"processed":(\d+)/g)) checkpointed = Number(match[1]) - 1;
    });
    // Between 1,500 and 4,500 records past the checkpoint (checkpoints come every 5,000).
    const past = 1500 + Math.floor(Math.random() * 3000);
    const started = Date.now();
    for (;;) {
      const last = lastRecordOf(out, child.pid as number);
      if (last !== undefined && checkpointed >= 0 && last - checkpointed >= past && last - checkpointed < EVERY - 200) break;
      if (last !== undefined && checkpointed < 0 && last >= past && last < EVERY - 200) break;
      assert.ok(Date.now() - started < 60_000, 'the job never got far enough past a checkpoint');
      await sleep(2);
    }
    child.kill('SIGKILL');
    assert.equal((await done).signal, 'SIGKILL');
  }
  // Let one more run redo the last crash's work, then stop it: the job need not finish.
  const { child, done } = spawnCli(args, { env });
  for (let waited = 0; waited < 30_000 && (lastRecordOf(out, child.pid as number) ?? -1) < 0; waited += 5) await sleep(5);
  await sleep(300);
  child.kill('SIGINT');
  assert.equal((await done).code, 3);

  const byProcess = recordsByProcess(out);
  const listing = await runCli(['runs', 'rework', '--store', store, '--json']);
  assert.equal(listing.code, 0, listing.stderr);
  const runs = (JSON.parse(listing.stdout) as RunRow[]).sort((a, b) => a.id - b.id);
  const crashed = runs.filter((run) => run.outcome === 'crashed');
  assert.equal(crashed.length, KILLS, `outcomes: ${runs.map((run) => run.outcome).join(',')}`);
  const pidOf = (run: RunRow) => Number(run.worker.split(':').at(-1));
  const reports: string[] = [];
  for (const run of crashed) {
    const mine = byProcess.get(pidOf(run)) ?? [];
    const later = runs.find((other) => other.id === run.redone?.byRun);
    assert.ok(run.redone && later, `crashed run ${run.id} has no rework reported: ${JSON.stringify(run)}`);
    // The work lost: this process's records past the checkpoint the next run resumed from.
    const resumedAt = byProcess.get(pidOf(later))?.[0] ?? 0;
    const truth = mine.filter((n) => n >= resumedAt).length;
    assert.ok(truth >= 1000, `run ${run.id} was killed ${truth} records past its checkpoint (< 1,000)`);
    const { records, atMost, markStep } = run.redone;
    assert.ok(records >= truth, `run ${run.id}: ${truth} records were redone, ckpt runs reports ${records}`);
    assert.ok(records <= truth + (atMost ? markStep : 0), `run ${run.id}: ${truth} redone, reported ${records} (mark step ${markStep})`);
    reports.push(`${truth}→${atMost ? '≤' : ''}${records}`);
  }
  t.diagnostic(`true records redone → reported: ${reports.join(' ')}`);
}

function recordsByProcess(path: string): Map<number, number[]> {
  const byProcess = new Map<number, number[]>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    const [pid, n] = line.split(' ').map(Number) as [number, number];
    const list = byProcess.get(pid) ?? [];
    list.push(n);
    byProcess.set(pid, list);
  }
  return byProcess;
}

/** The last record the process `pid` wrote, reading only the file's last 4 kB (polled every 2 ms:
 * reading the whole file, which grows past a megabyte, took a core from the job being timed). */
function lastRecordOf(path: string, pid: number): number | undefined {
  if (!existsSync(path)) return undefined;
  const fd = openSync(path, 'r');
  let text: string;
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.min(size, 4096));
    const read = readSync(fd, buffer, 0, buffer.length, size - buffer.length);
    text = buffer.toString('latin1', 0, read);
  } finally {
    closeSync(fd);
  }
  const tail = text.trimEnd().split('\n').at(-1);
  const [writer, n] = (tail ?? '').split(' ').map(Number);
  return writer === pid ? n : undefined;
}

test('SQLite: rework after 10 SIGKILLs is reported, never understated, within one mark step', { timeout: 180_000 }, async (t) => {
  await killTenTimes(t, `sqlite:${join(tempDir(), 'store.db')}`, {});
});

test('SQLite with ctx.tx (the store inside the job transaction): the same', { timeout: 180_000 }, async (t) => {
  await killTenTimes(t, `sqlite:${join(tempDir(), 'store.db')}`, { CKPT_TEST_TX: '1' });
});

test('PostgreSQL with ctx.tx: the same', { timeout: 180_000 }, async (t) => {
  const database = await freshDatabase('ckpt_rework');
  try {
    await killTenTimes(t, database.url, { CKPT_TEST_TX: '1' });
  } finally {
    await database.drop();
  }
});
