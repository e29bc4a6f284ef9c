// The failure line says what failed: a record, the source or the checkpoint, not "record at
// position X failed" for all three; and a record whose error cannot even be read (its `message`
// getter throws) is still that record's failure: retried and dead-lettered, never the run's.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const storeOf = () => `sqlite:${join(tempDir('ckpt-failure-messages-'), 'store.db')}`;

test('a source that fails mid-way is named as the source, after the last position it gave', { timeout: 60_000 }, async () => {
  const run = await runCli(['run', fixture('failure-kinds.ts'), '--store', storeOf(), '--quiet'], { env: { CKPT_TEST_FAIL: 'source' } });
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /^failed failure-kinds: the source failed after position 4: the export API dropped the cursor/);
  assert.doesNotMatch(run.stderr, /record at position/);
});

test("a misplaced position is the source's failure, not a record's", { timeout: 60_000 }, async () => {
  const run = await runCli(['run', fixture('positions-job.ts'), '--store', storeOf(), '--quiet'], { env: { CKPT_TEST_POSITIONS: '0,1,2,3,5,4,6,7' } });
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /the source failed after position 5: the source yielded position 4 after 5/);
});

test('an error whose message getter throws is dead-lettered like any failed record', { timeout: 60_000 }, async () => {
  const store = storeOf();
  const run = await runCli(['run', fixture('failure-kinds.ts'), '--store', store, '--quiet'], { env: { CKPT_TEST_FAIL: 'message-getter' } });
  assert.equal(run.code, 0, run.stderr);
  const letters = await runCli(['dlq', 'failure-kinds', '--store', store, '--json']);
  const parsed = JSON.parse(letters.stdout) as { position: number; error: string }[];
  assert.deepEqual(
    parsed.map((letter) => letter.position),
    [2],
  );
  assert.match(parsed[0]?.error ?? '', /an error that cannot be read/);
});
