// `ckpt chaos` stopped by SIGTERM or SIGINT (a CI step's timeout, Ctrl-C) kills the runs it
// started, a SIGSTOPped one included, removes its scratch and exits 3 with one line. Before, it
// died of the signal (exit 143 or 130, nothing said) and left its scratch directory and its
// workers: a SIGSTOPped one stayed stopped for ever, an orphan holding its store.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, isOneLineError, spawnCli, tempDir } from './helpers/cli.ts';

/** The processes whose parent is `pid`, with their state letter (R, S, T for stopped, …). */
function children(pid: number): { pid: number; state: string }[] {
  const found: { pid: number; state: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(parent) === pid) found.push({ pid: Number(name), state: state as string });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`ckpt chaos stopped by ${signal} while a worker is SIGSTOPped: its runs killed, its scratch removed, exit 3`, { timeout: 120_000 }, async () => {
    const tmp = tempDir('ckpt-chaos-stop-');
    const { child, done } = spawnCli(['chaos', fixture('chaos-steady-job.ts'), '--kills', '30', '--seed', '3', '--stop-past-lease'], {
      env: { TMPDIR: tmp },
    });
    // Wait for a worker of chaos's to be stopped (T), then stop chaos.
    let workers: { pid: number; state: string }[] = [];
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      workers = children(child.pid as number);
      if (workers.some((worker) => worker.state === 'T')) break;
      await sleep(50);
    }
    assert.ok(
      workers.some((worker) => worker.state === 'T'),
      'a worker was stopped past its lease',
    );
    child.kill(signal);
    const result = await done;
    assert.equal(result.code, 3, result.stdout + result.stderr);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, new RegExp(`^ckpt: ckpt chaos stopped by ${signal}: its runs were killed`));
    assert.equal(result.stdout, '', 'no report: no verdict was reached');
    await sleep(200);
    for (const worker of workers) assert.equal(alive(worker.pid), false, `worker ${worker.pid} (was ${worker.state}) is gone`);
    assert.deepEqual(readdirSync(tmp), [], 'the scratch directory is removed');
  });
}

test('ckpt chaos stopped while its --check script hangs: the script is killed too', { timeout: 120_000 }, async () => {
  const tmp = tempDir('ckpt-chaos-stop-');
  const script = join(tempDir('ckpt-chaos-check-'), 'hang.mjs');
  const pidFile = `${script}.pid`;
  writeFileSync(
    script,
    `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(pidFile)}, String(process.pid));\nsetInterval(() => {}, 1000);\n`,
  );
  const { child, done } = spawnCli(['chaos', fixture('chaos-steady-job.ts'), '--kills', '1', '--seed', '3', '--check', script], { env: { TMPDIR: tmp } });
  const deadline = Date.now() + 90_000;
  while (!existsSync(pidFile) && Date.now() < deadline) await sleep(50);
  assert.ok(existsSync(pidFile), 'the check script ran');
  const checkPid = Number(readFileSync(pidFile, 'utf8'));
  child.kill('SIGTERM');
  const result = await done;
  assert.equal(result.code, 3, result.stdout + result.stderr);
  await sleep(200);
  const gone = !alive(checkPid);
  if (!gone) process.kill(checkPid, 'SIGKILL');
  assert.ok(gone, 'the hanging check script was killed with chaos');
});
