// A failure is a failure whatever its value: a record that rejects with no reason (`reject()`,
// `Promise.reject()`, `throw undefined`) fails the run at its last good boundary, exactly as one
// that throws an Error does. It used to count as "no failure": the run exited 3 and committed a
// checkpoint (and the chunk's ctx.tx rows) past the record, so no later run ever saw it again.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

const kinds = ['reject', 'promise-reject', 'async-throw', 'sync-throw'] as const;

for (const kind of kinds) {
  for (const concurrency of [1, 4]) {
    test(`a record failing with no reason (${kind}, concurrency ${concurrency}) fails the run before its checkpoint`, { timeout: 60_000 }, async () => {
      const store = join(tempDir('ckpt-failure-values-'), 'store.db');
      const args = ['run', fixture('reject-job.ts'), '--store', `sqlite:${store}`, '--quiet'];
      const env = { CKPT_TEST_REJECT: kind, CKPT_TEST_CONCURRENCY: String(concurrency) };
      const first = await runCli(args, { env });
      assert.equal(first.code, 1, first.stderr);
      assert.match(first.stderr, /record at position 5 failed: .*undefined/);
      assert.ok(isOneLineError(first.stderr.replace(/^failed/, 'ckpt: failed')), first.stderr);

      const db = new DatabaseSync(store);
      const checkpoints = db.prepare('SELECT position FROM checkpoints').all() as { position: string }[];
      // setup() creates the table in the chunk's transaction: rolled back with it, it is not there.
      const table = db.prepare("SELECT name FROM sqlite_master WHERE name = 'done_rows'").get();
      const rows = table === undefined ? { n: 0 } : (db.prepare('SELECT count(*) AS n FROM done_rows').get() as { n: number });
      const outcome = db.prepare('SELECT outcome FROM runs').get() as { outcome: string };
      db.close();
      assert.deepEqual(checkpoints, [], 'no checkpoint was committed past the failed record');
      assert.equal(rows.n, 0, 'the chunk with its ctx.tx rows was rolled back');
      assert.equal(outcome.outcome, 'failed');

      // The record is still there for the next run, which fails on it again.
      const second = await runCli(args, { env });
      assert.equal(second.code, 1, second.stderr);
      assert.match(second.stderr, /record at position 5 failed/);
    });
  }
}
