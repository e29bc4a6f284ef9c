// A disk that fills mid-run: the run fails (exit 1) and its summary reports what was committed
// before, the checkpoints written and the position the next run resumes from, not "records 0,
// checkpoints 0 … stays at start" because the store could not record the run's end either.
// Needs a small filesystem: a 2 MB tmpfs, mounted as root (skipped, saying why, otherwise).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const mountPoint = join(tempDir('ckpt-disk-full-'), 'small');
mkdirSync(mountPoint);
let skip: string | false = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  after(() => execFileSync('umount', [mountPoint], { stdio: 'pipe' }));
} catch (error) {
  skip = `cannot mount a 2 MB tmpfs here (${String(error).split('\n', 1)[0]}): run as root to test a full disk`;
}

test('disk full mid-run: exit 1, and the summary reports the checkpoints committed before it', { timeout: 60_000, skip }, async () => {
  const path = join(mountPoint, 'store.db');
  const run = await runCli(['run', fixture('fill-job.ts'), '--store', `sqlite:${path}`]);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /disk is full/);
  const summary = JSON.parse(run.stdout.split('\n').find((line) => line.startsWith('{"type":"summary"')) ?? '{}') as {
    checkpoints: number;
    records: number;
    shards: { position: number | null; processed: number }[];
  };
  const db = new DatabaseSync(path, { readOnly: true });
  const newest = db.prepare('SELECT seq, position, processed FROM checkpoints ORDER BY seq DESC LIMIT 1').get() as {
    seq: number;
    position: string;
    processed: number;
  };
  db.close();
  assert.ok(newest.seq >= 3, `several checkpoints were committed before the disk filled (${newest.seq})`);
  assert.equal(summary.checkpoints, newest.seq, 'the summary counts the committed checkpoints');
  assert.equal(summary.shards[0]?.position, JSON.parse(newest.position));
  assert.equal(summary.shards[0]?.processed, newest.processed);
  assert.ok(summary.records >= newest.processed);
  assert.match(run.stderr, new RegExp(`the checkpoint stays at ${JSON.parse(newest.position)}, fix the cause`));
  assert.match(run.stderr, new RegExp(`checkpoints ${newest.seq} written`));
});
