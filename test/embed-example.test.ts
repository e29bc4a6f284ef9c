// examples/embed.ts, the library API without the CLI, run as a user runs it: a program that
// opens a store, runs a job with its own event listener and signal handling, and exits with the
// summary's code. Stopped by SIGTERM midway, it saves a checkpoint (exit 3) and a second start
// resumes there; the rows it wrote through ctx.tx exist exactly once.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { repoRoot, tempDir } from './helpers/cli.ts';

const example = join(repoRoot, 'examples', 'embed.ts');

test('examples/embed.ts completes, says so, and a second start finds it complete', () => {
  const cwd = tempDir();
  const env = { ...process.env, EMBED_RECORDS: '12000' };
  const first = spawnSync(process.execPath, [example], { cwd, env, encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /checkpoint at 4999: 5000 done\n/);
  assert.match(first.stdout, /completed embed-squares: 12000 records in \d+ ms, 3 checkpoints\n$/);
  const again = spawnSync(process.execPath, [example], { cwd, env, encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /^embed-squares is already complete \(generation 1\); pass --rerun to run it again\n$/);
  const db = new DatabaseSync(join(cwd, '.ckpt', 'embed.db'));
  try {
    const row = db.prepare('SELECT COUNT(*) AS c, COUNT(DISTINCT n) AS d, SUM(square) AS s FROM embed_squares').get() as { c: number; d: number; s: number };
    assert.deepEqual({ ...row }, { c: 12000, d: 12000, s: Array.from({ length: 12000 }, (_, n) => n * n).reduce((a, b) => a + b, 0) });
  } finally {
    db.close();
  }
});

test('examples/embed.ts: SIGTERM midway → checkpoint saved, exit 3; run again → resumes and completes, each row once', async () => {
  const cwd = tempDir();
  const store = `sqlite:${join(cwd, 'embed.db')}`;
  const env = { ...process.env, EMBED_RECORDS: '200000', EMBED_SPIN_US: '20' };
  const child = spawn(process.execPath, [example, store], { cwd, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  for (let waited = 0; !stdout.includes('checkpoint at'); waited += 20) {
    assert.ok(waited < 60_000, `no checkpoint within 60 s: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
  assert.equal(code, 3, stderr);
  assert.match(stderr, /^SIGTERM: finishing records in flight, then saving a checkpoint\n/);
  const stoppedAt = /interrupted at (\d+); run again to resume/.exec(stdout)?.[1];
  assert.ok(stoppedAt !== undefined, stdout);
  assert.ok(Number(stoppedAt) < 199_999, 'stopped before the end');

  const resumed = spawnSync(process.execPath, [example, store], { cwd, env: { ...env, EMBED_SPIN_US: '0' }, encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, new RegExp(`^resuming at ${stoppedAt} \\(${Number(stoppedAt) + 1} done\\)\\n`));
  assert.match(resumed.stdout, new RegExp(`completed embed-squares: ${199_999 - Number(stoppedAt)} records`));
  const db = new DatabaseSync(join(cwd, 'embed.db'));
  try {
    const row = db.prepare('SELECT COUNT(*) AS c, COUNT(DISTINCT n) AS d, MIN(n) AS lo, MAX(n) AS hi FROM embed_squares').get() as object;
    assert.deepEqual({ ...row }, { c: 200000, d: 200000, lo: 0, hi: 199999 });
  } finally {
    db.close();
  }
});
