// Guarantee 7: SIGTERM stops intake, drains, writes a final checkpoint and exits 3; the next run
// starts right after the last finished record.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} mid-run: exit 3, checkpoint at the last finished record, no rework on resume`, { timeout: 60_000 }, async () => {
    const dir = tempDir('ckpt-interrupt-');
    const store = join(dir, 'store.db');
    const out = join(dir, 'out.txt');
    const env = { CKPT_TEST_OUT: out, CKPT_TEST_SPIN_US: '50', CKPT_TEST_RECORDS: '40000' };
    // A long interval: without the final checkpoint, most of the work done would be redone.
    const args = ['run', fixture('count-job.ts'), '--store', `sqlite:${store}`, '--every', '100000'];

    const first = spawnCli(args, { env });
    await waitForOutput(first.child, (stdout) => stdout.includes('"run:start"'));
    await sleep(300);
    first.child.kill(signal);
    const stopped = await first.done;
    assert.equal(stopped.code, 3, stopped.stderr);
    const match = /interrupted at (\d+); run again to resume/.exec(stopped.stderr);
    assert.ok(match, stopped.stderr);
    const position = Number(match[1]);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    assert.equal(Number(lines.at(-1)?.split(' ')[1]), position, 'the checkpoint is at the last finished record');
    assert.ok(position > 0 && position < 39_999);

    const second = await spawnCli(args, { env }).done;
    assert.equal(second.code, 0, second.stderr);
    const after = readFileSync(out, 'utf8').trimEnd().split('\n').slice(lines.length);
    assert.equal(Number(after[0]?.split(' ')[1]), position + 1, 'the resume starts right after it');
    assert.equal(lines.length + after.length, 40_000, 'no record processed twice');

    const db = new DatabaseSync(store);
    const runs = db.prepare('SELECT outcome, rework FROM runs ORDER BY id').all() as { outcome: string; rework: number }[];
    db.close();
    assert.deepEqual(
      runs.map((run) => [run.outcome, run.rework]),
      [
        ['interrupted', 0],
        ['completed', 0],
      ],
    );
    assert.match(second.stderr, /nothing to redo: the run before stopped at its checkpoint/);
  });
}

test('a second Ctrl-C stops at once: the run is "interrupted", not "crashed", and its rework is exact', { timeout: 60_000 }, async () => {
  const store = `sqlite:${join(tempDir('ckpt-interrupt-'), 'store.db')}`;
  // Checkpoints every 10 records; record 25 never settles, so the first SIGINT cannot drain.
  const args = ['run', fixture('hang-job.ts'), '--store', store, '--json'];
  const first = spawnCli(args, { env: { CKPT_TEST_HANG_AT: '25' } });
  await waitForOutput(first.child, (stdout) => stdout.includes('"hanging"'));
  first.child.kill('SIGINT');
  await sleep(200);
  first.child.kill('SIGINT');
  const stopped = await first.done;
  assert.equal(stopped.code, 3, stopped.stderr);
  assert.match(stopped.stderr, /SIGINT again: stopped at once/);

  const runs = await runCli(['runs', 'hang', '--store', store, '--json']);
  const [run] = JSON.parse(runs.stdout) as { outcome: string; markCeiling: number; markStep: number }[];
  assert.equal(run?.outcome, 'interrupted', runs.stdout);
  // Records 20..24 finished after the checkpoint at 19, and 25 was in flight: 26 dispatched in all.
  assert.deepEqual([run?.markCeiling, run?.markStep], [26, 0]);

  const resumed = await runCli(['run', fixture('hang-job.ts'), '--store', store]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed {3}from 19; redid 6 records \(.* of work\) that an earlier run had done after the last checkpoint\n/);
  const events = await runCli(['events', 'hang', '--store', store, '--json']);
  const types = (JSON.parse(events.stdout) as { type: string; data: { outcome?: string } }[]).map(
    (event) => `${event.type}${event.data.outcome ? `:${event.data.outcome}` : ''}`,
  );
  assert.ok(!types.includes('run:crashed'), types.join(' '));
  assert.ok(types.includes('run:end:interrupted'), types.join(' '));
});
