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

for (const backend of ['sqlite', 'mysql'] as const) {
  test(`an approver's name over 255 characters or a reason over 10,000 is refused in one line, exit 2, and the hold stays (${backend})`, async (t) => {
    const dir = tempDir();
    let url = `sqlite:${join(dir, 's.db')}`;
    if (backend === 'mysql') {
      const { freshMysqlDatabase, mysqlSkip } = await import('./helpers/mysql.ts');
      const why = await mysqlSkip();
      if (why !== false) return t.skip(why);
      const database = await freshMysqlDatabase('ckpt_approver_len');
      t.after(() => database.drop());
      url = database.url;
    }
    const env = { CKPT_TEST_LOG: join(dir, 'effects.log') };
    const store = ['--store', url];
    const approve = (by: string, reason = 'ticket 1') =>
      runCli(['approve', 'two-approvers', '--raise', 'disable=+10', '--by', by, '--reason', reason, ...store]);
    const held = await runCli(['run', job, ...store, '--quiet'], { env });
    assert.equal(held.code, 7, held.stderr);
    // MySQL's approvals.by_name is VARCHAR(255): 'Data too long', exit 1, there and accepted on SQLite.
    const longName = await approve('b'.repeat(256));
    assert.equal(longName.code, 2, longName.stderr);
    assert.ok(isOneLineError(longName.stderr), longName.stderr);
    assert.match(longName.stderr, /^ckpt: --by is 256 characters long; an approver's name has at most 255/);
    const longReason = await approve('ana', 'r'.repeat(70_000));
    assert.equal(longReason.code, 2, longReason.stderr);
    assert.match(longReason.stderr, /^ckpt: --reason is 70000 characters long; at most 10000/);
    assert.equal((await approve('a'.repeat(255), 'r'.repeat(10_000))).code, 0, 'the longest name and reason are kept');
    const still = await runCli(['run', job, ...store, '--quiet'], { env });
    assert.equal(still.code, 7, `one approval of two: ${still.stderr}`);
  });
}
