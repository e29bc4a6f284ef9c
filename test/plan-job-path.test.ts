// `ckpt plan jobs/x.ts` made from one directory, `ckpt apply <id>` run from another: the plan keeps
// the job file's absolute path, so the apply runs the file that was planned. It kept the path as
// typed, so an apply elsewhere found no file there (or, found by the outside sweep, another
// project's file of the same relative name, run instead).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, runCli, tempDir } from './helpers/cli.ts';

test('a plan made with a relative job path is applied from another directory with the planned file', async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const env = { CKPT_TEST_LOG: join(dir, 'calls.log') };
  const planned = await runCli(['plan', 'planned-once.ts', ...store, '--json'], { cwd: join(repoRoot, 'test', 'fixtures'), env });
  assert.equal(planned.code, 0, planned.stderr);
  const plan = JSON.parse(planned.stdout) as { id: string; jobFile: string };
  assert.equal(plan.jobFile, join(repoRoot, 'test', 'fixtures', 'planned-once.ts'));
  const approved = await runCli(['plan', '--approve', plan.id, '--by', 'ana', '--reason', 'reviewed', ...store], { cwd: dir, env });
  assert.equal(approved.code, 0, approved.stderr);
  const applied = await runCli(['apply', plan.id, ...store, '--quiet'], { cwd: dir, env });
  assert.equal(applied.code, 0, applied.stderr);
  assert.deepEqual(readFileSync(env.CKPT_TEST_LOG, 'utf8').trim().split('\n'), ['0', '1', '2']);
  // Applied again: nothing to do, and the hint is one apply can follow (it has no --rerun).
  const again = await runCli(['apply', plan.id, ...store], { cwd: dir, env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /is already complete \(generation 1\); nothing to do\. To do it again: ckpt reset planned-once, then a new ckpt plan/);
  assert.doesNotMatch(again.stderr, /--rerun/);
  const rerun = await runCli(['apply', plan.id, ...store, '--rerun'], { cwd: dir, env });
  assert.equal(rerun.code, 2, 'ckpt apply has no --rerun');
});
