// Adversarial: a job writing through ctx.tx holds SQLite's one write lock for most of its run.
// Reading commands on the same store (status, runs, events) must still answer at once, not wait
// 10 s for the lock and then fail with "unexpected error: database is locked".
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

test('status, runs and events answer while a ctx.tx job holds the write lock', { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-busy-');
  const path = join(dir, 's.db');
  const db = new DatabaseSync(path);
  db.exec(
    'CREATE TABLE out (n INTEGER NOT NULL, shard TEXT); CREATE TABLE progress (id INTEGER PRIMARY KEY, done INTEGER NOT NULL); INSERT INTO progress VALUES (1, 0)',
  );
  db.close();
  const store = `sqlite:${path}`;
  const run = spawnCli(['run', fixture('tx-rows.ts'), '--store', store, '--param', 'count=50000000', '--every-ms', '20000']);
  try {
    await waitForOutput(run.child, (stdout) => stdout.includes('"type":"progress"'));
    for (const args of [['status'], ['runs', 'tx-rows'], ['events', 'tx-rows', '--limit', '3']]) {
      const started = Date.now();
      const result = await runCli([...args, '--store', store]);
      const took = Date.now() - started;
      assert.equal(result.code, 0, `ckpt ${args.join(' ')}: ${result.stderr}`);
      assert.ok(took < 5_000, `ckpt ${args.join(' ')} took ${took} ms`);
    }
  } finally {
    run.child.kill('SIGKILL');
    await run.done;
  }
});
