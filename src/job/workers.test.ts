import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeadLocalWorker } from './workers.ts';

test('a live local worker is alive; a killed one is dead even before its parent reaps it (zombie)', { skip: process.platform !== 'linux' }, async () => {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const worker = `${hostname()}:${child.pid}`;
  await sleep(100);
  assert.equal(isDeadLocalWorker(worker), false);
  // Keep the child unreaped: with no 'exit' listener yet and the event loop not turning, the
  // SIGKILLed process stays a zombie while we look.
  process.kill(child.pid as number, 'SIGKILL');
  const until = Date.now() + 2000;
  let dead = false;
  while (!dead && Date.now() < until) {
    dead = isDeadLocalWorker(worker);
    if (!dead) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  assert.equal(dead, true);
  await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(isDeadLocalWorker(worker), true);
  assert.equal(isDeadLocalWorker(`another-host:${child.pid}`), false);
});
