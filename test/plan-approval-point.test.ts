// `ckpt plan` of a job with an approval point records, it does not hold: the plan run passes the
// point (no hold opened, nothing for `ckpt approve` to release), so the plan lists the effects
// past it too, and the apply then holds there for the job's two approvers before doing them.
// Before, the plan run opened the hold in the store (instance held, one approver required where
// the job says two) and listed only the effects before the point, so the apply, once released
// by that one person, held the rest as outside the plan.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

test('a plan passes an approval point without holding; its apply holds there for two people, then does exactly the plan', async () => {
  const dir = tempDir();
  const log = join(dir, 'calls.log');
  const env = { CKPT_TEST_LOG: log };
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const job = fixture('planned-point.ts');
  const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').sort() : []);

  const planned = await runCli(['plan', job, ...store, '--json'], { env });
  assert.equal(planned.code, 0, planned.stderr);
  const plan = JSON.parse(planned.stdout) as { id: string; counts: Record<string, number>; failed: number };
  assert.deepEqual(plan.counts, { disable: 3, revoke: 3 }, 'the plan lists the effects past the point');
  assert.equal(plan.failed, 0);
  const status = await runCli(['status', ...store, '--json']);
  assert.doesNotMatch(status.stdout, /revoke-phase/, `the plan opened no hold: ${status.stdout}`);
  assert.deepEqual(calls(), [], 'a plan calls nothing');

  assert.equal((await runCli(['plan', '--approve', plan.id, '--by', 'ana', '--reason', 'reviewed', ...store])).code, 0);
  const held = await runCli(['apply', plan.id, ...store, '--quiet'], { env });
  assert.equal(held.code, 7, held.stderr);
  assert.match(held.stderr, /held: approval point revoke-phase; 2 approvals needed \(0 given\)/);
  const approve = (by: string) => runCli(['approve', 'planned-point', '--point', 'revoke-phase', '--by', by, '--reason', 'reviewed', ...store]);
  assert.doesNotMatch((await approve('ana')).stdout, /released/);
  assert.match((await approve('ben')).stdout, /released point:revoke-phase/);
  const applied = await runCli(['apply', plan.id, ...store, '--quiet'], { env });
  assert.equal(applied.code, 0, applied.stderr);
  assert.deepEqual(calls(), ['disable 0', 'disable 1', 'disable 2', 'revoke 0', 'revoke 1', 'revoke 2']);
});
