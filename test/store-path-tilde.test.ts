// `--store sqlite:~/ckpt.db`: no shell expands a ~ after `sqlite:`, so the store was made in a
// folder named `~` under the working directory (exit 0), and the same command run from another
// directory (cron, a CI step) found no store there and started every job over, effects
// included. Now one line, exit 2, naming the full path to write; nothing is created.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

for (const store of ['sqlite:~/ckpt.db', 'sqlite://~/ckpt.db', 'sqlite:~']) {
  test(`--store ${store} → exit 2, one line, no folder named ~`, async () => {
    const dir = tempDir();
    const result = await runCli(['run', fixture('count-job.ts'), '--store', store], { cwd: dir, env: { CKPT_TEST_RECORDS: '5' } });
    const made = existsSync(join(dir, '~'));
    rmSync(dir, { recursive: true, force: true });
    assert.equal(result.code, 2, result.stderr);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, /starts with ~, which is not expanded after sqlite:.*--store sqlite:\$HOME/);
    assert.equal(made, false, 'no folder named ~ was made');
  });
}

test('a path with a ~ elsewhere, or ./~ on purpose, is a store as before', async () => {
  const dir = tempDir();
  const result = await runCli(['run', fixture('count-job.ts'), '--store', 'sqlite:./~/a~b.db', '--quiet'], { cwd: dir, env: { CKPT_TEST_RECORDS: '5' } });
  const made = existsSync(join(dir, '~', 'a~b.db'));
  rmSync(dir, { recursive: true, force: true });
  assert.equal(result.code, 0, result.stderr);
  assert.ok(made);
});
