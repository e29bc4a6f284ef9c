// Adversarial: two `ckpt dlq <job-file> --retry` at the same moment. Each dead letter's retry
// commits its ctx.tx writes with the letter's removal, so a letter the other process already
// resolved must not commit its writes a second time (guarantee 3: ctx.tx exactly once).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';

test('two dlq --retry together: each dead letter is retried into ctx.tx once, not twice', { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-dlq-');
  const path = join(dir, 's.db');
  const job = fixture('dlq-tx.ts');
  const first = await runCli(['run', job, '--store', `sqlite:${path}`, '--quiet'], { env: { POISON: '3,7' } });
  assert.equal(first.code, 0, first.stderr);

  const env = { FIXED: '1', SLOW_MS: '1500' };
  const retries = [0, 1].map(() => spawnCli(['dlq', job, '--retry', '--store', `sqlite:${path}`], { env }));
  const results = await Promise.all(retries.map((retry) => retry.done));
  for (const result of results) assert.equal(result.code, 0, result.stderr);

  const db = new DatabaseSync(path);
  const rows = db.prepare('SELECT n, count(*) AS c FROM out GROUP BY n ORDER BY n').all() as { n: number; c: number }[];
  const letters = db.prepare('SELECT count(*) AS c FROM dead_letters').get() as { c: number };
  db.close();
  assert.deepEqual(
    rows.map((row) => [row.n, row.c]),
    [...Array(10).keys()].map((n) => [n, 1]),
    'every record written exactly once',
  );
  assert.equal(letters.c, 0);
  assert.match(results.map((result) => result.stdout).join('\n'), /already retried by another process/);
});
