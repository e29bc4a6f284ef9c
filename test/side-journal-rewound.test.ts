// A SQLite store's effect journal that went back in time (its `.effects-wal` deleted with its
// `-shm` after a crash, before SQLite copied it into the file) is refused (exit 4), never taken
// as it stands: the intents it lost are the effects a resume would run again without asking
// `verify`. Before, the resume completed and the directory's log showed accounts disabled twice.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const checkpoints = (stdout: string) => stdout.split('\n').filter((line) => line.includes('"type":"checkpoint"')).length;
const doneSince = (stdout: string, checkpointsSeen: number) => {
  const lines = stdout.split('\n');
  let seen = 0;
  let done = 0;
  for (const line of lines) {
    if (line.includes('"type":"checkpoint"')) seen++;
    else if (seen >= checkpointsSeen && line.includes('"type":"effect:done"')) done++;
  }
  return done;
};
const calls = (log: string) => readFileSync(log, 'utf8').split('\n').filter(Boolean);

test('a SQLite store whose .effects-wal was deleted after a SIGKILL is refused (exit 4) by run and status; no account is disabled twice', async () => {
  const dir = tempDir();
  const db = join(dir, 's.db');
  const log = join(dir, 'directory.log');
  const env = { DIRECTORY_LOG: log, PACE_MS: '5', ACCOUNTS: '400' };
  const args = ['run', fixture('paced-disables.ts'), '--store', `sqlite:${db}`, '--every', '10', '--json'];

  // A first run stopped cleanly: its side file is closed, its WAL copied into the file and removed.
  const first = spawnCli(args, { env });
  await waitForOutput(first.child, (out) => checkpoints(out) >= 2);
  first.child.kill('SIGTERM');
  assert.equal((await first.done).code, 3);

  // A second run SIGKILLed after two checkpoints of its own and some effects past them: what it
  // journalled lives only in the side file's WAL (a few hundred pages, short of an auto-checkpoint).
  const second = spawnCli(args, { env });
  await waitForOutput(second.child, (out) => checkpoints(out) >= 2 && doneSince(out, 2) >= 6);
  second.child.kill('SIGKILL');
  await second.done;
  const before = calls(log);

  rmSync(`${db}.effects-wal`);
  rmSync(`${db}.effects-shm`, { force: true });

  for (const command of [args, ['status', '--store', `sqlite:${db}`]]) {
    const refused = await runCli(command, { env });
    assert.equal(refused.code, 4, `${command[0]}: ${refused.stdout.slice(-300)}${refused.stderr}`);
    assert.ok(isOneLineError(refused.stderr), refused.stderr);
    assert.match(refused.stderr, /s\.db\.effects ends at event \d+, but the store .* made checkpoints after its event \d+/);
  }
  assert.deepEqual(calls(log), before, 'the refused runs called the directory');
  assert.equal(new Set(before).size, before.length, 'an account was disabled twice');
});
