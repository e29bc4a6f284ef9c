// `ckpt run` started through a launcher that is SIGKILLed (a harness or a supervisor killing the pid
// it started): `node scripts/with-node.mjs bin/ckpt.js run …` (the with-node pid), and, in a project
// of one's own, `npx ckpt run …` (npm exec's pid, above `sh -c`). A SIGKILL cannot be passed on, so
// the job must notice that what started it is gone and die too: before, it ran on as an orphan
// holding its shard, the next run was refused in its name (exit 4) while it kept calling the service.
// A SIGTERM to npm's pid is passed on to the `sh -c` below it, which dies of it without passing it
// on: the job then drains and saves (its run `interrupted`), as a SIGTERM means; before, it was
// SIGKILLed (`npm run ckpt`, its run `crashed`) or ran on as an orphan (`npx ckpt`).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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

/** Starts `launch` in its own process group, SIGKILLs its pid once the job has checkpointed, and
 * checks that the whole group is gone within 3 s and that the next run resumes (exit 0), each
 * account disabled once. */
async function killLauncher(
  launch: (args: string[], env: NodeJS.ProcessEnv) => ChildProcess,
  dir: string,
  cwd = repoRoot,
  signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL',
) {
  const db = join(dir, 's.db');
  const log = join(dir, 'directory.log');
  const env = { ...process.env, CKPT_STORE: undefined, DATABASE_URL: undefined, DIRECTORY_LOG: log, PACE_MS: '5', ACCOUNTS: '3000' };
  const args = ['--store', `sqlite:${db}`, '--every', '10', '--json'];
  const launcher = launch(args, env);
  const pgid = launcher.pid as number;
  try {
    await waitForOutput(launcher, (out) => out.split('"type":"checkpoint"').length > 3, 30_000);
    launcher.kill(signal);
    const deadline = Date.now() + 3000;
    while (alive(pgid) && Date.now() < deadline) await sleep(50);
    assert.equal(alive(pgid), false, 'the job outlived its launcher');
    const runs = JSON.parse((await runCli(['runs', 'paced-disables', ...args.slice(0, 2), '--json'], { cwd })).stdout) as { outcome: string }[];
    assert.deepEqual(
      runs.map((run) => run.outcome),
      [signal === 'SIGTERM' ? 'interrupted' : 'crashed'],
      signal === 'SIGTERM' ? 'the job drained and saved' : 'the job was killed',
    );
    const resumed = await runCli(['run', fixture('paced-disables.ts'), ...args], { cwd, env: { DIRECTORY_LOG: log, PACE_MS: '0', ACCOUNTS: '3000' } });
    assert.equal(resumed.code, 0, resumed.stderr);
    const calls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    assert.equal(new Set(calls).size, 3000);
    assert.equal(calls.length, 3000, 'an account was disabled twice');
  } finally {
    if (alive(pgid)) process.kill(-pgid, 'SIGKILL');
  }
}

const linuxOnly = { skip: process.platform !== 'linux' && 'watches its launchers through /proc' };

test(
  'a SIGKILL to `node scripts/with-node.mjs bin/ckpt.js run` takes the job down with it; the next run resumes it (exit 0), each account disabled once',
  linuxOnly,
  async () => {
    await killLauncher(
      (args, env) =>
        spawn(process.execPath, [join(repoRoot, 'scripts', 'with-node.mjs'), join(repoRoot, 'bin', 'ckpt.js'), 'run', fixture('paced-disables.ts'), ...args], {
          cwd: repoRoot,
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      tempDir(),
    );
  },
);

/** A project as docs/jobs.md sets it up, the package linked in rather than installed. */
function ownProject(): string {
  const project = tempDir();
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'own-project', type: 'module', private: true }));
  mkdirSync(join(project, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(repoRoot, join(project, 'node_modules', 'checkpointed'));
  symlinkSync(join('..', 'checkpointed', 'bin', 'ckpt.js'), join(project, 'node_modules', '.bin', 'ckpt'));
  return project;
}

const npx = (project: string) => (args: string[], env: NodeJS.ProcessEnv) =>
  spawn('npx', ['--no-install', 'ckpt', 'run', fixture('paced-disables.ts'), ...args], {
    cwd: project,
    // Node 24 first on PATH, as the docs ask of a project's own `npx ckpt`.
    env: { ...env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

test(
  'in a project of its own, a SIGKILL to `npx ckpt run` takes the job down with npm; the next run resumes it (exit 0), each account disabled once',
  linuxOnly,
  async () => {
    const project = ownProject();
    await killLauncher(npx(project), project, project);
  },
);

const npmRun = (args: string[], env: NodeJS.ProcessEnv) =>
  spawn('npm', ['run', '--silent', 'ckpt', '--', 'run', fixture('paced-disables.ts'), ...args], {
    cwd: repoRoot,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

test('a SIGTERM to `npm run ckpt -- run` drains the job and saves (run interrupted), as the docs say; the next run resumes it', linuxOnly, async () => {
  await killLauncher(npmRun, tempDir(), repoRoot, 'SIGTERM');
});

test('in a project of its own, a SIGTERM to `npx ckpt run` drains the job and saves (run interrupted); the next run resumes it', linuxOnly, async () => {
  const project = ownProject();
  await killLauncher(npx(project), project, project, 'SIGTERM');
});
