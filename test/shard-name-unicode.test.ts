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
