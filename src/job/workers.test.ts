import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatNode, isDeadLocalWorker, localNode, parseNode, type WorkerNode } from './workers.ts';

const linux = process.platform === 'linux';
const ours = () => parseNode(localNode()) as WorkerNode;
const startOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};
/** The node a process on this machine and namespace would store at claim. */
const nodeOf = (pid: number) => formatNode({ machine: ours().machine, pid, start: startOf(pid) });

test('a live local worker is alive; a killed one is dead even before its parent reaps it (zombie)', { skip: !linux }, async () => {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const worker = `${hostname()}:${child.pid}`;
  await sleep(100);
  const node = nodeOf(child.pid as number);
  assert.equal(isDeadLocalWorker(worker, node), false);
  // Keep the child unreaped: with no 'exit' listener yet and the event loop not turning, the
  // SIGKILLed process stays a zombie while we look.
  process.kill(child.pid as number, 'SIGKILL');
  const until = Date.now() + 2000;
  let dead = false;
  while (!dead && Date.now() < until) {
    dead = isDeadLocalWorker(worker, node);
    if (!dead) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  assert.equal(dead, true);
  await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(isDeadLocalWorker(worker, node), true);
});

test('a worker on another machine or PID namespace is never judged by its pid, even with our hostname and a pid gone here', () => {
  const gone = 4_194_304 + 1; // above Linux's largest pid_max: no process here has it
  const worker = `${hostname()}:${gone}`;
  assert.equal(isDeadLocalWorker(worker, formatNode({ machine: `${ours().machine}-elsewhere`, pid: gone, start: '12345' })), false);
  assert.equal(isDeadLocalWorker(worker, null), false, 'a run stored without its node: its lease decides');
  assert.equal(
    isDeadLocalWorker(worker, formatNode({ machine: ours().machine, pid: gone, start: '12345' })),
    true,
    'same machine and namespace: the pid decides',
  );
});

test('a pid reused by another process does not keep a dead worker alive; this process is alive', { skip: !linux }, () => {
  const self = parseNode(localNode()) as WorkerNode;
  assert.equal(isDeadLocalWorker('x', localNode()), false);
  assert.equal(isDeadLocalWorker('x', formatNode({ ...self, start: `${Number(self.start) + 1}` })), true, 'our pid, an earlier process');
  const parent = process.ppid;
  assert.equal(isDeadLocalWorker('x', nodeOf(parent)), false);
  assert.equal(isDeadLocalWorker('x', formatNode({ machine: self.machine, pid: parent, start: `${Number(startOf(parent)) + 7}` })), true);
});
