// The state a checkpoint stores must come back as it was: a Set or a Map would come back as {},
// a Date as a string, NaN and Infinity as null. The checkpoint refuses such a state with one
// line naming where the value is and what it is (as it always refused a BigInt), and nothing is
// committed: the run fails at its last good boundary instead of resuming with another type.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const cases: [string, RegExp][] = [
  ['state-set', /state\.value\.inner\[0\] is a Set, which comes back from JSON as \{\}/],
  ['state-map', /state\.value\.inner\[0\] is a Map, which comes back from JSON as \{\}/],
  ['state-date', /state\.value\.inner\[0\] is a Date, which comes back from JSON as a string/],
  ['state-nan', /state\.value\.inner\[0\] is NaN, which JSON stores as null/],
  ['state-infinity', /state\.value\.inner\[0\] is Infinity, which JSON stores as null/],
  ['state-bigint', /state\.value\.inner\[0\] is a BigInt, which JSON cannot store/],
];

for (const [kind, says] of cases) {
  test(`a state holding ${kind.replace('state-', '')} is refused at the checkpoint, in one line, nothing committed`, { timeout: 60_000 }, async () => {
    const path = join(tempDir('ckpt-state-json-'), 'store.db');
    const run = await runCli(['run', fixture('failure-kinds.ts'), '--store', `sqlite:${path}`, '--quiet'], { env: { CKPT_TEST_FAIL: kind } });
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0] ?? '', /^failed failure-kinds: the checkpoint at position 4 failed: /);
    assert.match(lines[0] ?? '', says);
    assert.match(lines[0] ?? '', /the checkpoint stays at start/);
    const db = new DatabaseSync(path);
    const checkpoints = db.prepare('SELECT count(*) AS n FROM checkpoints').get() as { n: number };
    db.close();
    assert.equal(checkpoints.n, 0);
  });
}
