// fn ran, so the effect happened, even when what it returned cannot be stored as JSON (a BigInt,
// a cycle). Its completion used to throw after fn, leaving the key in doubt: every retry ran fn
// again (3 charges for one record, then exit 1). Now the key is recorded done without a result,
// the attempt fails once naming why (a record:retry event), and the effect is never run again.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

for (const kind of ['bigint', 'cycle'] as const) {
  test(`fn returning a ${kind}: each charge made once, the reason in the record's retry event`, async () => {
    const dir = tempDir();
    const env = { CKPT_TEST_LOG: join(dir, 'payments.log'), CKPT_TEST_RESULT: kind };
    const store = ['--store', `sqlite:${join(dir, 's.db')}`];
    const run = await runCli(['run', fixture('unstorable-result.ts'), ...store, '--quiet'], { env });
    const charges = readFileSync(env.CKPT_TEST_LOG, 'utf8').trim().split('\n');
    const events = await runCli(['events', 'unstorable-result', ...store, '--json']);
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(charges, ['charge 1', 'charge 2'], 'each charge once');
    assert.equal(run.code, 0, run.stderr);
    assert.match(events.stdout, /record:retry[\s\S]*charge:1 ran, but its result could not be stored/);
  });
}
