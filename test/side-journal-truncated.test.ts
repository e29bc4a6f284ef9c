// A SQLite store's .effects file truncated after a crash, while its -wal survived: the open reads
// the WAL and succeeds, and the damage shows at the first read of a lost page. Refused with one
// line saying what to do (exit 2, as a damaged store file is), not "unexpected error" (exit 1).
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const checkpoints = (stdout: string) => stdout.split('\n').filter((line) => line.includes('"type":"checkpoint"')).length;
const calls = (log: string) => readFileSync(log, 'utf8').split('\n').filter(Boolean);

test('a truncated SQLite .effects beside its surviving -wal is refused by run and status with one line (exit 2); no effect runs', async () => {
  const dir = tempDir();
  const db = join(dir, 's.db');
  const log = join(dir, 'directory.log');
  const env = { DIRECTORY_LOG: log, PACE_MS: '1', ACCOUNTS: '3000' };
  const args = ['run', fixture('paced-disables.ts'), '--store', `sqlite:${db}`, '--every', '50', '--json'];

  const run = spawnCli(args, { env });
  await waitForOutput(run.child, (out) => checkpoints(out) >= 8, 30_000);
  run.child.kill('SIGKILL');
  await run.done;
  const before = calls(log);
  truncateSync(`${db}.effects`, Math.floor(statSync(`${db}.effects`).size / 2));

  for (const command of [args, ['status', '--store', `sqlite:${db}`]]) {
    const refused = await runCli(command, { env });
    assert.equal(refused.code, 2, `${command[0]}: ${refused.stdout.slice(-300)}${refused.stderr}`);
    assert.ok(isOneLineError(refused.stderr), refused.stderr);
    assert.match(refused.stderr, /damaged .*restore/);
  }
  assert.deepEqual(calls(log), before, 'the refused run called the directory');
});
