// On a machine whose `node` is older than the project needs (Node 20 here, /usr/bin/node):
// `ckpt` says so in one line and exits 2, and scripts/with-node.mjs (which every npm script
// goes through) runs the command under a Node 24 it finds in its cache instead.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ckptBin, fixture, isOneLineError, repoRoot, tempDir } from './helpers/cli.ts';

const launcher = join(repoRoot, 'scripts', 'with-node.mjs');

/** A Node older than 24 on this machine ($CKPT_OLD_NODE, else /usr/bin/node), or undefined. */
function findOldNode(): { path: string; version: string } | undefined {
  const path = process.env.CKPT_OLD_NODE ?? '/usr/bin/node';
  const probe = spawnSync(path, ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) return undefined;
  const version = probe.stdout.trim();
  return Number(/^v(\d+)/.exec(version)?.[1] ?? 99) < 24 ? { path, version } : undefined;
}

const oldNode = findOldNode();
const skip = oldNode === undefined ? 'no Node older than 24 at $CKPT_OLD_NODE or /usr/bin/node on this machine' : false;

/** A cache like the one with-node.mjs fills from the registry, holding this test's own Node 24. */
function fakeCache(): string {
  const cache = tempDir('ckpt-node-cache-');
  const platform = process.platform === 'win32' ? 'win' : process.platform;
  const packageDir = join(cache, 'node_modules', `node-${platform}-${process.arch}`);
  mkdirSync(join(packageDir, 'bin'), { recursive: true });
  writeFileSync(join(packageDir, 'package.json'), JSON.stringify({ name: `node-${platform}-${process.arch}`, bin: { node: 'bin/node' } }));
  symlinkSync(process.execPath, join(packageDir, 'bin', 'node'));
  return cache;
}

test('ckpt under a Node older than 24: one line naming the version and what to do, exit 2', { skip }, () => {
  const old = oldNode!;
  const run = spawnSync(old.path, [ckptBin, 'run', fixture('count-job.ts'), '--store', 'memory:'], { cwd: tempDir(), encoding: 'utf8' });
  assert.equal(run.status, 2, run.stderr);
  assert.ok(isOneLineError(run.stderr), run.stderr);
  assert.match(run.stderr, new RegExp(`^ckpt: needs Node\\.js 24 or later, this is ${old.version.replace(/\./g, '\\.')} `));
  assert.match(run.stderr, /npm run ckpt/);
  assert.doesNotMatch(run.stderr, /No such built-in module/);
  assert.equal(run.stdout, '');
});

test('with-node.mjs under an old Node runs the cached Node 24, first on PATH, and passes the exit code on', { skip }, () => {
  const cache = fakeCache();
  const env = { ...process.env, CKPT_NODE_CACHE: cache };
  const probe = spawnSync(oldNode!.path, [launcher, '-e', 'console.log(process.version, process.env.PATH.split(require("path").delimiter)[0])'], {
    env,
    encoding: 'utf8',
  });
  assert.equal(probe.status, 0, probe.stderr);
  const [version, firstOnPath] = probe.stdout.trim().split(' ');
  assert.equal(version, process.version);
  assert.equal(firstOnPath, join(cache, 'node_modules', `node-${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`, 'bin'));
  assert.equal(probe.stderr, '', 'the cache had it: nothing fetched, nothing said');

  const exit = spawnSync(oldNode!.path, [launcher, '-e', 'process.exit(7)'], { env });
  assert.equal(exit.status, 7);
});

test('with-node.mjs: a `ckpt run` under it completes, and a SIGTERM sent to the launcher alone still drains and saves (exit 3)', { skip }, async () => {
  const env = { ...process.env, CKPT_NODE_CACHE: fakeCache(), CKPT_TEST_RECORDS: '1000000', CKPT_TEST_SPIN_US: '20' };
  const cwd = tempDir();
  const args = [launcher, ckptBin, 'run', fixture('count-job.ts'), '--store', 'sqlite:ckpt.db', '--json'];
  const child = spawn(oldNode!.path, args, { cwd, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // Wait for the first checkpoint, so the run is well under way.
  for (let waited = 0; !stdout.includes('"type":"checkpoint"'); waited += 50) {
    assert.ok(waited < 30_000, `no checkpoint within 30 s: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
  assert.equal(code, 3, stderr);
  assert.match(stdout, /"outcome":"interrupted"/);

  const resumed = spawnSync(oldNode!.path, [launcher, ckptBin, 'run', fixture('count-job.ts'), '--store', 'sqlite:ckpt.db', '--quiet'], {
    cwd,
    env: { ...env, CKPT_TEST_SPIN_US: '0' },
    encoding: 'utf8',
  });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /^completed count/);
});
