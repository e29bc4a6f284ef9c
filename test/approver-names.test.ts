// Two approvers means two people: `--by ana`, then `--by ANA` or `--by " Ana "`, is one person
// approving twice, refused as "already approved" (exit 2), for a held limit and for a plan. Before,
// each spelling counted as another approver: `ana` and `ANA` released a two-person hold, and
// `ana` and `Ana` made a plan that needs two approvals appliable.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

const job = fixture('two-approvers.ts');

test('a held limit needing two approvers is not released by one name in two spellings', async () => {
  const dir = tempDir();
  const env = { CKPT_TEST_LOG: join(dir, 'effects.log') };
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const approve = (by: string) => runCli(['approve', 'two-approvers', '--raise', 'disable=+10', '--by', by, '--reason', 'ticket 1', ...store]);
  const held = await runCli(['run', job, ...store, '--quiet'], { env });
  assert.equal(held.code, 7, held.stderr);
  assert.equal((await approve('Ana')).code, 0);
  for (const again of ['ANA', '  ana ', 'ａｎａ']) {
    const refused = await approve(again);
    assert.equal(refused.code, 2, `--by ${JSON.stringify(again)}: ${refused.stdout}${refused.stderr}`);
    assert.ok(isOneLineError(refused.stderr), refused.stderr);
    assert.match(refused.stderr, /^ckpt: ana already approved limit:disable .*another person must approve/);
  }
  const still = await runCli(['run', job, ...store, '--quiet'], { env });
  assert.equal(still.code, 7, `still held after one person's approvals: ${still.stderr}`);
  const second = await approve('ben');
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /released limit:disable .* approved by ana, ben/);
  const done = await runCli(['run', job, ...store, '--quiet'], { env });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(done.code, 0, done.stderr);
});

test('a plan needing two approvals is not appliable after one name in two spellings', async () => {
  const dir = tempDir();
  const env = { CKPT_TEST_LOG: join(dir, 'effects.log') };
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const made = await runCli(['plan', job, '--param', 'run=p', ...store, '--json'], { env });
  assert.equal(made.code, 0, made.stderr);
  const id = JSON.parse(made.stdout).id as string;
  const approve = (by: string) => runCli(['plan', '--approve', id, '--by', by, '--reason', 'reviewed', ...store]);
  assert.equal((await approve('ana')).code, 0);
  const twice = await approve('Ana ');
  assert.match(twice.stdout, /1 of 2 approvals required: 1 more, by another name/);
  const apply = await runCli(['apply', id, ...store, '--quiet'], { env });
  assert.equal(apply.code, 4, `apply with one person's approval: ${apply.stderr}`);
  assert.equal((await approve('ben')).code, 0);
  const applied = await runCli(['apply', id, ...store, '--quiet'], { env });
  rmSync(dir, { recursive: true, force: true });
  assert.notEqual(applied.code, 4, applied.stderr);
});
