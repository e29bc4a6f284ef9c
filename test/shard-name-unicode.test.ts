// Shard names a job may legitimately build from data (emoji, accents) run as declared; a shard
// name with a lone surrogate (half of a UTF-16 pair, e.g. sliced out of a longer string) is
// refused in one line (exit 2) before anything runs. Before, every store wrote it as UTF-8,
// which turns a lone surrogate into U+FFFD: shards '\ud800' and '\udfff' became one stored
// shard, the run completed (exit 0) and the other shard's 20 records were never processed.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

async function run(names: string) {
  const dir = tempDir();
  const log = join(dir, 'records.log');
  const result = await runCli(['run', fixture('named-shards.ts'), '--store', `sqlite:${join(dir, 's.db')}`, '--quiet'], {
    env: { CKPT_TEST_SHARD_NAMES: names, CKPT_TEST_LOG: log },
  });
  const lines = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
  rmSync(dir, { recursive: true, force: true });
  return { result, lines };
}

test('shard names with emoji and accents run as declared, every record once', async () => {
  const { result, lines } = await run('["admins 👤", "café", "plain"]');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(lines.length, 60);
  assert.deepEqual([...new Set(lines.map((line) => JSON.parse(line.slice(0, line.lastIndexOf(' ')))))].sort(), ['admins 👤', 'café', 'plain']);
});

test('a shard name with a lone surrogate → exit 2, one line, no record processed', async () => {
  const { result, lines } = await run('["\\ud800", "\\udfff", "plain"]');
  assert.equal(result.code, 2, `${result.stderr} (records processed: ${lines.length})`);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /the shard name "\\ud800" holds a lone surrogate/);
  assert.equal(lines.length, 0);
});

test('a shard name no store can hold (NUL, lone surrogate, too long) is refused before the instance is made: nothing pending 0/0 is left', async () => {
  for (const names of ['["tenant\\u0000a", "plain"]', '["\\ud800", "plain"]', `["${'x'.repeat(600)}"]`]) {
    const dir = tempDir();
    const store = ['--store', `sqlite:${join(dir, 's.db')}`];
    for (const command of [['run'], ['plan']]) {
      const result = await runCli([...command, fixture('named-shards.ts'), ...store], {
        env: { CKPT_TEST_SHARD_NAMES: names, CKPT_TEST_LOG: join(dir, 'records.log') },
      });
      assert.equal(result.code, 2, `${command[0]} ${names.slice(0, 30)}: ${result.stderr}`);
      assert.ok(isOneLineError(result.stderr), result.stderr);
      assert.match(result.stderr, /a shard name has at most 512 characters, no NUL and no lone surrogate/);
    }
    const status = await runCli(['status', ...store, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout), [], `${names.slice(0, 30)}: no instance was left behind`);
    assert.ok(!existsSync(join(dir, 'records.log')), 'no record was processed');
    rmSync(dir, { recursive: true, force: true });
  }
});
