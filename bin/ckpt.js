#!/usr/bin/env node
import module from 'node:module';
// The `ckpt` command. Job files are TypeScript; Node 24 strips their types, so keep its notice quiet.
import { isNpm, parentOf } from './process-tree.js';

// First, before anything that an older Node cannot load (node:sqlite, a .ts job file): say which
// Node this is and what to do, instead of "No such built-in module: node:sqlite" later on.
const NEED_MAJOR = 24;
if (Number(process.versions.node.split('.')[0]) < NEED_MAJOR) {
  process.stderr.write(
    `ckpt: needs Node.js ${NEED_MAJOR} or later, this is ${process.version} (${process.execPath}); install Node ${NEED_MAJOR} and run again, or in a checkout of checkpointed run \`npm run ckpt -- <command>\`, which fetches it\n`,
  );
  process.exit(2);
}
// Started through a launcher (scripts/with-node.mjs, which says so in CKPT_LAUNCHER_PID; npm, as in
// a project's own `npx ckpt`, above a `sh -c`), a SIGKILL to the launcher's pid cannot be passed on:
// the launcher dies alone, and the job would run on as an orphan, still holding its shard, so the
// next run is refused in its name. A SIGTERM to npm's pid is passed to the `sh -c` only, which dies
// of it without passing it on: the same orphan. So, on Linux, the chain up to the launcher is
// watched through /proc: once a process in it has a new parent, the job stops as the signal meant.
// The shell gone (it died of a signal npm passed on): the job SIGTERMs itself, so it drains and
// saves. The launcher gone while the shell lives on, or with-node gone (it passes every other
// signal on): it was SIGKILLed, and so is the job. `ckpt` run directly watches nothing.
watchLauncher();

// Node's compile cache keeps the compiled library, and a job file's code once its types are
// stripped, for the next start: `ckpt` is started often (workers, `ckpt chaos`, scripts), and
// compiling is most of its start-up. Node's own place: $NODE_COMPILE_CACHE, else
// <os tmpdir>/node-compile-cache (never the project); NODE_DISABLE_COMPILE_CACHE=1 turns it off.
// A directory that cannot be written only means no cache: Node says nothing and runs on.
module.enableCompileCache?.();
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning') return;
  // A job file in a CommonJS package: loading it fails, and the failure line says what to do.
  if (warning.message.startsWith('Failed to load the ES module')) return;
  process.stderr.write(`${warning.name}: ${warning.message}\n`);
});
// A reader that goes away (`ckpt events x | head`) is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code !== 'EPIPE') throw error;
  });
}
// Whatever escapes is still one line; CKPT_DEBUG=1 shows where it came from.
const lastResort = (error) => {
  const text = error instanceof Error ? error.message : String(error);
  process.stderr.write(`ckpt: unexpected error: ${text.split('\n', 1)[0]}\n`);
  if (process.env.CKPT_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
};
process.on('uncaughtException', lastResort);
process.on('unhandledRejection', lastResort);

// A signal while the CLI itself loads (before `ckpt run` takes signals over) must not kill it
// silently: nothing has started yet, so say so and exit 3 (whatever checkpoint exists is kept).
const early = [];
const holdSignal = (signal) => early.push(signal);
process.on('SIGINT', holdSignal);
process.on('SIGTERM', holdSignal);
const { main, preload } = await import('../dist/cli/main.js');
// The command's own code too (main loads each command's only when it runs), while signals are held.
await preload(process.argv.slice(2));
// Loading may not have let the event loop turn: let a signal caught meanwhile reach holdSignal.
await new Promise((resolve) => setImmediate(resolve));
process.off('SIGINT', holdSignal);
process.off('SIGTERM', holdSignal);
if (early.length > 0) {
  process.stderr.write(`ckpt: stopped by ${early[0]} while starting, before doing anything; run again\n`);
  process.exit(3);
}
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Done: exit even if the job left something running (a record given up after a stop, an open
// socket or timer of its own), once what we wrote has been handed to the OS.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));

/** See above: SIGKILLs this process once its launcher is gone (Linux only). */
function watchLauncher() {
  const launcherPid = process.env.CKPT_LAUNCHER_PID;
  // Not for the processes this one starts (`ckpt chaos`'s workers, a job's own children).
  delete process.env.CKPT_LAUNCHER_PID;
  if (process.platform !== 'linux') return;
  // Each link is [a process, its parent]: from this process up to its launcher. with-node as the
  // parent is the launcher (it watches npm above it itself); else npm within two steps (ckpt, sh, npm).
  const links = [];
  const parent = parentOf(process.pid);
  if (parent === undefined || parent <= 1) return;
  links.push([process.pid, parent]);
  if (launcherPid !== String(parent)) {
    const above = parentOf(parent);
    if (!isNpm(parent) && above !== undefined && above > 1 && isNpm(above)) links.push([parent, above]);
    else if (!isNpm(parent)) return;
  }
  const watch = setInterval(() => {
    if (links.every(([pid, parentPid]) => parentOf(pid) === parentPid)) return;
    clearInterval(watch);
    // Our own parent gone is the shell (two links) dying of a signal passed on to it; else the
    // launcher itself was killed.
    const shellDied = links.length === 2 && parentOf(process.pid) !== links[0][1];
    process.kill(process.pid, shellDied ? 'SIGTERM' : 'SIGKILL');
  }, 100);
  watch.unref();
}
