// `ckpt runs` after a SIGKILL: a crashed run's RECORDS are what its checkpoints made durable. It
// showed the ceiling of its last progress mark (`≤ 1,564` for a run whose last checkpoint held
// 1,400), counting records whose work was lost and redone by the next run (that run's REWORK
// shows them): the runs of a shard added up to more than the shard. Twice: from the start, and a
// resumed run crashed again (its own records, from where it resumed).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

/** The `processed` of the last checkpoint a `--json` run printed. */
function lastCheckpoint(stdout: string): number {
  const lines = stdout.split('\n').filter((line) => line.includes('"type":"checkpoint"'));
  return JSON.parse(lines.at(-1) as string).data.processed;
}

test('a crashed run’s RECORDS in ckpt runs are its durable records, not its progress mark’s ceiling; the runs add up to the shard', {
  timeout: 120_000,
}, async () => {
  const dir = tempDir('ckpt-runs-crashed-');
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const env = { DIRECTORY_LOG: join(dir, 'directory.log'), PACE_MS: '3', ACCOUNTS: '3000' };
  const args = ['run', fixture('paced-disables.ts'), ...store, '--every', '100', '--json'];
  const durable: number[] = [];
  for (let crash = 0; crash < 2; crash++) {
    const { child, done } = spawnCli(args, { env });
    const seen = durable.at(-1) ?? 0;
    await waitForOutput(child, (out) => out.split('"type":"checkpoint"').length > 5, 60_000);
    // Mid-way between checkpoints: the progress mark is ahead of the last one.
    await new Promise((resolve) => setTimeout(resolve, 150));
    child.kill('SIGKILL');
    const killed = await done;
    assert.equal(killed.signal, 'SIGKILL');
    durable.push(lastCheckpoint(killed.stdout));
    assert.ok((durable.at(-1) ?? 0) > seen, 'the run checkpointed past where it resumed');
  }
  assert.equal((await runCli(['status', ...store])).code, 0, 'status marks the second run crashed');
  const table = await runCli(['runs', 'paced-disables', ...store]);
  assert.equal(table.code, 0, table.stderr);
  const records = new Map(
    table.stdout
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((line) => {
        const match = /^(\d+)\s.*\s(crashed|completed)\s+\S+\s+(≤ )?([\d,]+)\s/.exec(line);
        assert.ok(match, line);
        return [Number(match[1]), `${match[3] ?? ''}${match[4]}`] as const;
      }),
  );
  const [first = 0, second = 0] = durable;
  assert.deepEqual(
    [...records],
    [
      [2, (second - first).toLocaleString('en-US')],
      [1, first.toLocaleString('en-US')],
    ],
    table.stdout,
  );
  // The last run completes the rest: the runs' records add up to the shard.
  const last = await runCli(['run', fixture('paced-disables.ts'), ...store, '--every', '100', '--quiet'], { env: { ...env, PACE_MS: '0' } });
  assert.equal(last.code, 0, last.stderr);
  const json = JSON.parse((await runCli(['runs', 'paced-disables', ...store, '--json'])).stdout) as { id: number; processed: number }[];
  const finalTable = await runCli(['runs', 'paced-disables', ...store]);
  const counted = finalTable.stdout
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((line) => Number((/\s(crashed|completed)\s+\S+\s+(≤ )?([\d,]+)\s/.exec(line)?.[3] ?? 'NaN').replaceAll(',', '')));
  assert.equal(
    counted.reduce((sum, count) => sum + count, 0),
    3000,
    `${finalTable.stdout}\n${JSON.stringify(json)}`,
  );
});
