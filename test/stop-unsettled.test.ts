// Guarantee 7 when what hangs holds nothing open: a record, or source(), awaiting a promise that
// nothing will ever settle. Node would end such a process with exit 13 ("unsettled top-level
// await") as soon as a stop let go of the last timer, or at once for source(), leaving the run
// `running`. `ckpt run` keeps the process up while the job runs, so SIGTERM ends it with exit 3
// by the drain deadline + 2 s, and the run reads `interrupted`.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const DRAIN_MS = 500;

async function stopWhileHanging(env: Record<string, string>, hanging: string): Promise<void> {
  const store = join(tempDir('ckpt-unsettled-'), 'store.db');
  const run = spawnCli(['run', fixture('hang-job.ts'), '--store', `sqlite:${store}`, '--drain-ms', String(DRAIN_MS), '--json'], {
    env: { CKPT_TEST_HANG_BARE: '1', ...env },
  });
  await waitForOutput(run.child, (stdout) => stdout.includes(hanging));
  // Long enough that a process with nothing to wait for would already have ended by itself.
  await sleep(300);
  const signalled = Date.now();
  run.child.kill('SIGTERM');
  const killer = setTimeout(() => run.child.kill('SIGKILL'), DRAIN_MS + 6_000);
  const stopped = await run.done;
  clearTimeout(killer);
  assert.equal(stopped.code, 3, `exit ${stopped.code} (${stopped.signal ?? 'no signal'}) ${Date.now() - signalled} ms after SIGTERM: ${stopped.stderr}`);
  assert.ok(Date.now() - signalled < DRAIN_MS + 2_000 + 1_000, `took ${Date.now() - signalled} ms`);
  assert.doesNotMatch(stopped.stderr, /unsettled top-level await/);
  const db = new DatabaseSync(store);
  const runs = db.prepare('SELECT outcome FROM runs').all() as { outcome: string }[];
  db.close();
  assert.deepEqual(
    runs.map((row) => row.outcome),
    ['interrupted'],
  );
}

for (const concurrency of ['1', '4']) {
  test(`SIGTERM while a record awaits a promise holding nothing open (concurrency ${concurrency}): exit 3, run interrupted`, { timeout: 30_000 }, () =>
    stopWhileHanging({ CKPT_TEST_HANG_AT: '25', CKPT_TEST_CONCURRENCY: concurrency }, '"hanging"'),
  );
}

test('SIGTERM while source() awaits a promise holding nothing open: exit 3, run interrupted', { timeout: 30_000 }, () =>
  stopWhileHanging({ CKPT_TEST_SOURCE: 'hangs' }, '"source":"hanging"'),
);
