// Adversarial: a record that never settles, or a source that breaks before yielding anything,
// must not keep `ckpt run` alive. Guarantee 7: a signal ends the run with exit 3 within the drain
// deadline, keeping the last checkpoint; the next run resumes from it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { fixture, isOneLineError, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const job = fixture('hang-job.ts');

for (const concurrency of ['1', '4']) {
  test(`SIGTERM while a record never settles (concurrency ${concurrency}): exit 3 by the drain deadline, resume from the last checkpoint`, {
    timeout: 30_000,
  }, async () => {
    const dir = tempDir('ckpt-hang-');
    const store = join(dir, 'store.db');
    const args = ['run', job, '--store', `sqlite:${store}`, '--drain-ms', '500'];
    const first = spawnCli(args, { env: { CKPT_TEST_HANG_AT: '25', CKPT_TEST_CONCURRENCY: concurrency } });
    await waitForOutput(first.child, (stdout) => stdout.includes('"hanging"'));
    const signalled = Date.now();
    first.child.kill('SIGTERM');
    const killer = setTimeout(() => first.child.kill('SIGKILL'), 8_000);
    const stopped = await first.done;
    clearTimeout(killer);
    assert.equal(stopped.signal, null, `still running ${Date.now() - signalled} ms after SIGTERM (drain deadline 500 ms)`);
    assert.equal(stopped.code, 3, stopped.stderr);
    assert.match(stopped.stderr, /interrupted at 19; run again to resume/);

    const second = await spawnCli(args, { env: { CKPT_TEST_CONCURRENCY: concurrency } }).done;
    assert.equal(second.code, 0, second.stderr);
    const db = new DatabaseSync(store);
    const runs = db.prepare('SELECT outcome, resumed_from FROM runs ORDER BY id').all();
    db.close();
    assert.deepEqual(
      runs.map((run) => [run.outcome, run.resumed_from]),
      [
        ['interrupted', 'null'],
        ['completed', '19'],
      ],
    );
  });
}

for (const kind of ['throws', 'garbage']) {
  test(`a source whose read() ${kind === 'throws' ? 'throws at once' : 'returns no iterable'}: exit 1 naming it, the process ends`, {
    timeout: 30_000,
  }, async () => {
    const dir = tempDir('ckpt-hang-');
    const run = spawnCli(['run', job, '--store', `sqlite:${join(dir, 'store.db')}`, '--quiet'], { env: { CKPT_TEST_SOURCE: kind } });
    const killer = setTimeout(() => run.child.kill('SIGKILL'), 8_000);
    const result = await run.done;
    clearTimeout(killer);
    assert.equal(result.signal, null, 'the process did not end by itself');
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, kind === 'throws' ? /the export API refused the cursor/ : /iterable|asyncIterator|not a function/);
    assert.ok(!/\n\s+at /.test(result.stderr), result.stderr);
    assert.ok(isOneLineError(`ckpt: ${result.stderr}`.trimEnd().split('\n')[0] ?? ''));
  });
}

test('SIGTERM while the job hangs before its first record (source() never resolves): exit 3 soon after the drain deadline', { timeout: 30_000 }, async () => {
  const dir = tempDir('ckpt-hang-');
  const run = spawnCli(['run', job, '--store', `sqlite:${join(dir, 'store.db')}`, '--drain-ms', '300'], { env: { CKPT_TEST_SOURCE: 'hangs' } });
  await waitForOutput(run.child, (stdout) => stdout.includes('"source":"hanging"'));
  const signalled = Date.now();
  run.child.kill('SIGTERM');
  const killer = setTimeout(() => run.child.kill('SIGKILL'), 10_000);
  const result = await run.done;
  clearTimeout(killer);
  assert.equal(result.signal, null, `still running ${Date.now() - signalled} ms after SIGTERM`);
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /did not stop within the drain deadline; stopped at once, the last checkpoint is kept/);
  assert.ok(!/\n\s+at /.test(result.stderr), result.stderr);
  // The next run finds the dead run crashed and does the work.
  const next = await spawnCli(['run', job, '--store', `sqlite:${join(dir, 'store.db')}`, '--quiet']).done;
  assert.equal(next.code, 0, next.stderr);
});

for (const [what, slowModule] of [
  ['the CLI itself', 'dist/cli/main.js'],
  // main loads a command's code only for that command: bin/ckpt.js has it loaded while it holds signals.
  ["the command's own code", './run-command.js'],
] as const) {
  test(`SIGTERM while ${what} is still loading: exit 3 with one line saying nothing was done, not a silent death`, { timeout: 30_000 }, async () => {
    const dir = tempDir('ckpt-hang-');
    const marker = join(dir, 'loading');
    const run = spawnCli(['run', job, '--store', `sqlite:${join(dir, 'store.db')}`], {
      env: { NODE_OPTIONS: `--import=${pathToFileURL(fixture('slow-cli-load.mjs')).href}`, CKPT_TEST_LOADING: marker, CKPT_TEST_SLOW_MODULE: slowModule },
    });
    while (!existsSync(marker)) await sleep(10);
    run.child.kill('SIGTERM');
    const result = await run.done;
    assert.equal(result.signal, null, 'killed by the signal without a word');
    assert.equal(result.code, 3, result.stderr);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, /stopped by SIGTERM while starting, before doing anything/);
    assert.equal(existsSync(join(dir, 'store.db')), false, 'the store was not even opened');
  });
}
