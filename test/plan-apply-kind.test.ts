// An apply performs an effect only as the plan listed it: same key, and the same kind and target.
// A job whose key names the record (account:<n>) and whose kind comes from the data (disable, or
// delete once the account is gone from HR) planned a disable; by the apply the data said delete,
// and the apply performed the delete the reviewer never saw (the plan's counts said 3 disables),
// because only scope and key were compared. Found by the outside sweep #7.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

test('an effect whose kind or target changed since the plan is held, not performed', async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const env = { CKPT_TEST_LOG: join(dir, 'calls.log'), CKPT_TEST_ACTIONS: join(dir, 'actions.txt') };
  writeFileSync(env.CKPT_TEST_ACTIONS, 'disable directory\ndisable directory\ndisable directory\n');
  const planned = await runCli(['plan', fixture('planned-kinds.ts'), ...store, '--json'], { env });
  assert.equal(planned.code, 0, planned.stderr);
  const plan = JSON.parse(planned.stdout) as { id: string };
  assert.equal((await runCli(['plan', '--approve', plan.id, '--by', 'ana', '--reason', 'three disables', ...store], { env })).code, 0);

  // The world moved: account 1 is now to be deleted, account 2 disabled in another system.
  writeFileSync(env.CKPT_TEST_ACTIONS, 'disable directory\ndelete directory\ndisable billing\n');
  const applied = await runCli(['apply', plan.id, ...store], { env });
  assert.equal(applied.code, 7, applied.stderr);
  assert.deepEqual(readFileSync(env.CKPT_TEST_LOG, 'utf8').trim().split('\n'), ['disable directory 0']);
  assert.match(applied.stderr, /account:1/);
  assert.match(applied.stderr, /account:2/);

  const events = await runCli(['events', 'planned-kinds', ...store, '--json'], { env });
  const held = (JSON.parse(events.stdout) as { type: string; data: { key: string; kind: string } }[]).filter((event) => event.type === 'effect:held');
  assert.deepEqual(held.map((event) => `${event.data.kind} ${event.data.key}`).sort(), ['delete account:1', 'disable account:2']);
  assert.equal((await runCli(['audit', 'planned-kinds', '--verify', ...store], { env })).code, 0);
  const letters = await runCli(['dlq', 'planned-kinds', ...store], { env });
  assert.match(letters.stdout, /account:1 differs from plan \w+ \(planned as disable of directory, now delete of directory\)/);
  assert.match(letters.stdout, /account:2 differs from plan \w+ \(planned as disable of directory, now disable of billing\)/);

  // Reviewed, the retry performs them as they are now.
  const retried = await runCli(['dlq', fixture('planned-kinds.ts'), '--retry', ...store], { env });
  assert.equal(retried.code, 0, retried.stderr);
  assert.deepEqual(readFileSync(env.CKPT_TEST_LOG, 'utf8').trim().split('\n').sort(), ['delete directory 1', 'disable billing 2', 'disable directory 0']);
});

test('the held effects an apply lists are named by their whole keys, spaces and all', async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const env = { CKPT_TEST_LOG: join(dir, 'calls.log'), CKPT_TEST_ACTIONS: join(dir, 'actions.txt'), CKPT_TEST_KEY_PREFIX: 'close account of Ana ' };
  writeFileSync(env.CKPT_TEST_ACTIONS, 'disable directory\ndisable directory\ndisable directory\n');
  const planned = await runCli(['plan', fixture('planned-kinds.ts'), ...store, '--json'], { env });
  assert.equal(planned.code, 0, planned.stderr);
  const plan = JSON.parse(planned.stdout) as { id: string };
  assert.equal((await runCli(['plan', '--approve', plan.id, '--by', 'ana', '--reason', 'three disables', ...store], { env })).code, 0);
  writeFileSync(env.CKPT_TEST_ACTIONS, 'disable directory\ndelete directory\ndisable directory\n');
  const applied = await runCli(['apply', plan.id, ...store], { env });
  assert.equal(applied.code, 7, applied.stderr);
  assert.match(applied.stderr, /^ {2}main@1: close account of Ana 1$/m);
  const json = await runCli(['apply', plan.id, ...store, '--json'], { env });
  const held = json.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; held?: string[] })
    .find((line) => line.type === 'held');
  assert.deepEqual(held?.held, ['close account of Ana 1']);
});
