// Guarantee 8: a flaky record succeeds on retry; a poison record lands in dead letters with its
// error; past the skip limit the run exits 1 and a rerun after a fix resumes from the last good
// checkpoint; `ckpt dlq --retry` reprocesses and clears.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

function outRows(dbPath: string): number[] {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  const rows = (db.prepare('SELECT n FROM out ORDER BY n').all() as { n: number }[]).map((row) => row.n);
  db.close();
  return rows;
}
const without = (...skipped: number[]) => Array.from({ length: 50 }, (_, n) => n).filter((n) => !skipped.includes(n));

test('flaky record retried, poison records dead-lettered, ckpt dlq lists them and --retry clears them', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const dbPath = join(dir, 'store.db');
  const store = ['--store', `sqlite:${dbPath}`];
  const run = await runCli(['run', fixture('flaky.ts'), ...store], { env: { POISON: '13,27' } });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /skipped\s+2 records to dead letters after their retries; see ckpt dlq flaky/);
  const events = run.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; data: { position?: number; error?: string; attempt?: number } });
  const retries = events.filter((event) => event.type === 'record:retry');
  assert.ok(
    retries.some(
      (event) =>
        event.data.position === 5 && event.data.attempt === 1 && /^flaky: connection reset at test\/fixtures\/flaky\.ts:\d+:\d+$/.test(event.data.error ?? ''),
    ),
    'record 5 was retried after its flaky failure',
  );
  assert.deepEqual(
    // The error says where in the job's file it was thrown.
    events.filter((event) => event.type === 'record:dead').map((event) => [event.data.position, event.data.error?.replace(/:\d+:\d+$/, ':L:C')]),
    [
      [13, 'poison record 13 at test/fixtures/flaky.ts:L:C'],
      [27, 'poison record 27 at test/fixtures/flaky.ts:L:C'],
    ],
  );
  assert.deepEqual(outRows(dbPath), without(13, 27), 'every other record wrote exactly once; failed attempts left nothing');

  const listed = await runCli(['dlq', 'flaky', ...store]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /13\s+3\s+.*poison record 13/);
  assert.match(listed.stdout, /27\s+3\s+.*poison record 27/);
  assert.match(listed.stdout, /2 dead letters/);

  const needsFile = await runCli(['dlq', 'flaky', '--retry', ...store]);
  assert.equal(needsFile.code, 2);
  assert.match(needsFile.stderr, /^ckpt: --retry runs the job's code, so it needs the job file/);

  const stillBroken = await runCli(['dlq', fixture('flaky.ts'), '--retry', ...store], { env: { POISON: '13,27' } });
  assert.equal(stillBroken.code, 1);
  assert.match(stillBroken.stdout, /0 succeeded and were removed, 2 still failing/);
  assert.deepEqual(outRows(dbPath), without(13, 27), 'a failed dead-letter retry rolls back its writes');

  const retried = await runCli(['dlq', fixture('flaky.ts'), '--retry', ...store], { env: { POISON: '13,27', FIXED: '1' } });
  assert.equal(retried.code, 0, retried.stderr);
  assert.match(retried.stdout, /2 succeeded and were removed, 0 still failing/);
  assert.deepEqual(outRows(dbPath), without(), 'the dead letters were reprocessed, each row once');
  const empty = await runCli(['dlq', 'flaky', ...store]);
  assert.match(empty.stdout, /no dead letters for flaky/);
});

test('past the skip limit the run exits 1 at the last good checkpoint; after a fix it resumes from there', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const dbPath = join(dir, 'store.db');
  const args = ['run', fixture('flaky.ts'), '--store', `sqlite:${dbPath}`];
  const failed = await runCli([...args, '--quiet'], { env: { POISON: '13,27,41' } });
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(
    failed.stderr,
    /^failed flaky: record at position 41 failed: poison record 41 at test\/fixtures\/flaky\.ts:\d+:\d+ \(skip limit of 2 dead letters reached\); the checkpoint stays at 39/,
  );
  assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(
    outRows(dbPath),
    without(13, 27).filter((n) => n < 40),
    'the failed chunk (40…) was rolled back',
  );

  const fixedRun = await runCli(args, { env: { POISON: '13,27,41', FIXED: '1' } });
  assert.equal(fixedRun.code, 0, fixedRun.stderr);
  const resume = fixedRun.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { type: string; data: { position?: number } })
    .find((event) => event.type === 'run:resume');
  assert.equal(resume?.data.position, 39, 'resumed from the last good checkpoint');
  assert.deepEqual(outRows(dbPath), without(13, 27));
  const listed = await runCli(['dlq', 'flaky', '--store', `sqlite:${dbPath}`, '--json']);
  assert.deepEqual(
    (JSON.parse(listed.stdout) as { position: number }[]).map((letter) => letter.position),
    [13, 27],
  );
});
