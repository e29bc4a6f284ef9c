// `npm run ckpt -- run …` SIGKILLed (npm's own pid, as a harness or a supervisor kills what it
// started): the job dies with it, as a SIGKILL means, and the next run resumes the shard at once.
// Before, npm died alone: sh, scripts/with-node.mjs and the job went on as orphans, the job still
// holding its shard, so the resume was refused in its name (exit 4) while it kept disabling.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, repoRoot, runCli, tempDir, waitForOutput } from './helpers/cli.ts';

const alive = (pgid: number) => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};

test('a SIGKILL to `npm run ckpt -- run` takes the job down with npm; the next run resumes it (exit 0), each account disabled once', {
  skip: process.platform !== 'linux' && 'watches npm through /proc',
}, async () => {
  const dir = tempDir();
  const db = join(dir, 's.db');
  const log = join(dir, 'directory.log');
  const env = { ...process.env, CKPT_STORE: undefined, DATABASE_URL: undefined, DIRECTORY_LOG: log, PACE_MS: '5', ACCOUNTS: '3000' };
  const args = [fixture('paced-disables.ts'), '--store', `sqlite:${db}`, '--every', '10', '--json'];
  // Its own process group, so that whatever outlives npm can be found (and cleared) afterwards.
  const npm = spawn('npm', ['run', '--silent', 'ckpt', '--', 'run', ...args], { cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const pgid = npm.pid as number;
  try {
    await waitForOutput(npm, (out) => out.split('"type":"checkpoint"').length > 3, 30_000);
    npm.kill('SIGKILL');
    const deadline = Date.now() + 3000;
    while (alive(pgid) && Date.now() < deadline) await sleep(50);
    assert.equal(alive(pgid), false, 'the job outlived npm');
    const resumed = await runCli(['run', ...args], { env: { DIRECTORY_LOG: log, PACE_MS: '0', ACCOUNTS: '3000' } });
    assert.equal(resumed.code, 0, resumed.stderr);
    const calls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    assert.equal(new Set(calls).size, 3000);
    assert.equal(calls.length, 3000, 'an account was disabled twice');
  } finally {
    if (alive(pgid)) process.kill(-pgid, 'SIGKILL');
  }
});
