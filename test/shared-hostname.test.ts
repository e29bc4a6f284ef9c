// Workers that share a hostname but not a machine or PID namespace (host-network pods,
// `--network host` containers, cloned VMs) must not reap each other's live runs: `host:pid`
// names a process only where that pid means the same process. Here a real worker runs in its
// own PID namespace on this machine (same hostname, same store file), under a pid that does not
// exist in ours; another worker and `ckpt status` must leave its run alone.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ckptBin, fixture, runCli, tempDir } from './helpers/cli.ts';

const canUnshare =
  process.platform === 'linux' && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' }).status === 0
    ? false
    : 'needs Linux and `unshare --pid --fork --mount-proc` (root or user namespaces)';

/** A pid no process of our namespace has, below pid_max. */
function freePid(): number {
  for (;;) {
    const pid = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return pid;
    }
  }
}

let namespaced: ChildProcess | undefined;
after(() => {
  if (namespaced?.pid !== undefined) process.kill(-namespaced.pid, 'SIGKILL');
});

test('a live worker in another PID namespace with our hostname is not reaped by status or by a second worker', { skip: canUnshare }, async () => {
  const dir = tempDir();
  const db = join(dir, 's.db');
  const pid = freePid();
  // sh is pid 1 of the new namespace; setting ns_last_pid makes the worker it forks pid `pid`.
  namespaced = spawn(
    'unshare',
    [
      '--pid',
      '--fork',
      '--mount-proc',
      'sh',
      '-c',
      'echo "$1" > /proc/sys/kernel/ns_last_pid && "$2" "$3" run "$4" --store "sqlite:$5" --lease-ms 60000 --quiet; exit $?',
      'sh',
      String(pid - 1),
      process.execPath,
      ckptBin,
      fixture('count-job.ts'),
      db,
    ],
    { detached: true, stdio: 'ignore', env: { ...process.env, CKPT_STORE: undefined, CKPT_TEST_RECORDS: '1000000', CKPT_TEST_SPIN_US: '2000' } },
  );
  const worker = `${hostname()}:${pid}`;
  const runsOf = () => {
    let reader: DatabaseSync | undefined;
    try {
      reader = new DatabaseSync(db, { readOnly: true });
      return reader.prepare('SELECT worker, outcome FROM runs ORDER BY id').all() as { worker: string; outcome: string }[];
    } catch {
      return []; // not created yet
    } finally {
      reader?.close();
    }
  };
  const until = Date.now() + 30_000;
  while (!runsOf().some((run) => run.worker === worker && run.outcome === 'running')) {
    assert.ok(Date.now() < until, `the namespaced worker ${worker} never started: ${JSON.stringify(runsOf())}`);
    await sleep(100);
  }
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `pid ${pid} is not a process of this namespace`);

  const status = await runCli(['status', '--store', `sqlite:${db}`]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`running .*${worker}`), status.stdout);
  // A second worker: same job, same instance (its own record count does not change the instance).
  const second = await runCli(['run', fixture('count-job.ts'), '--store', `sqlite:${db}`, '--quiet'], { env: { CKPT_TEST_RECORDS: '50' } });
  assert.equal(second.code, 4, `the second worker must be refused while ${worker} lives: ${second.stdout}${second.stderr}`);
  assert.match(second.stderr, new RegExp(worker));
  assert.deepEqual(
    runsOf().map((run) => `${run.worker} ${run.outcome}`),
    [`${worker} running`],
  );
});
