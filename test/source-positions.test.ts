// Adversarial sources: positions are how a resume finds its place, so a source whose positions
// go backwards, repeat, are not JSON, or that ignores where to resume would make a resume skip
// records or redo ones whose ctx.tx writes are committed. The run fails (exit 1) naming the
// problem, with its checkpoint at the last good boundary, instead of completing wrongly.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const job = fixture('positions-job.ts');

function checkpointOf(store: string): unknown {
  const db = new DatabaseSync(store);
  const row = db.prepare('SELECT position FROM checkpoints ORDER BY seq DESC LIMIT 1').get();
  db.close();
  return row === undefined ? undefined : JSON.parse(String(row.position));
}

for (const [positions, pattern] of [
  ['0,1,2,3,5,4,6,7', /the source failed after position 5: the source yielded position 4 after 5/],
  ['0,1,2,3,3,4', /the source failed after position 3: the source yielded position 3 after 3/],
  ['0,1,2,3,undefined,5', /the source yielded a position that is not JSON \(undefined\)/],
  ['0,1,2,3,NaN,5', /the source yielded position NaN, which JSON cannot hold/],
] as const) {
  test(`positions ${positions}: exit 1 naming the bad position, checkpoint at the last good boundary`, async () => {
    const dir = tempDir('ckpt-source-');
    const store = join(dir, 's.db');
    const result = await runCli(['run', job, '--store', `sqlite:${store}`, '--quiet'], { env: { CKPT_TEST_POSITIONS: positions } });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, pattern);
    assert.match(result.stderr, /positions in increasing order/);
    assert.ok(!/\n\s+at /.test(result.stderr), result.stderr);
    assert.equal(checkpointOf(store), 3, 'the chunk holding the bad position is not committed');
  });
}

test('a source that ignores where to resume: the resume fails instead of redoing committed records', async () => {
  const dir = tempDir('ckpt-source-');
  const store = join(dir, 's.db');
  const out = join(dir, 'out.txt');
  const args = ['run', job, '--store', `sqlite:${store}`, '--quiet'];
  const env = { CKPT_TEST_IGNORE_AFTER: '1', CKPT_TEST_OUT: out };
  const first = await runCli(args, { env: { ...env, CKPT_TEST_FAIL_AT: '5' } });
  assert.equal(first.code, 1, first.stderr);
  assert.equal(checkpointOf(store), 3);
  const second = await runCli(args, { env });
  assert.equal(second.code, 1, second.stderr);
  assert.match(second.stderr, /the source yielded position 0 after 3/);
  assert.equal(readFileSync(out, 'utf8'), '0\n1\n2\n3\n4\n', 'no committed record was processed again');
});

test('a well-behaved hand-written source resumes and completes', async () => {
  const dir = tempDir('ckpt-source-');
  const store = join(dir, 's.db');
  const out = join(dir, 'out.txt');
  const args = ['run', job, '--store', `sqlite:${store}`, '--quiet'];
  assert.equal((await runCli(args, { env: { CKPT_TEST_OUT: out, CKPT_TEST_FAIL_AT: '5' } })).code, 1);
  const second = await runCli(args, { env: { CKPT_TEST_OUT: out } });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(readFileSync(out, 'utf8'), '0\n1\n2\n3\n4\n4\n5\n6\n7\n8\n9\n');
});
