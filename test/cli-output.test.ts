// ckpt status, runs and events print readable tables, and JSON with --json.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

let store: string;
const env = { CKPT_TEST_RECORDS: '3000' };

before(async () => {
  store = `sqlite:${join(tempDir('ckpt-out-'), 'store.db')}`;
  for (const tag of ['alpha', 'beta']) {
    const result = await runCli(['run', fixture('count-job.ts'), '--store', store, '--param', `tag=${tag}`, '--every', '1000', '--quiet'], { env });
    assert.equal(result.code, 0, result.stderr);
  }
});

test('ckpt status: a table of instances, and JSON', async () => {
  const table = await runCli(['status', '--store', store]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^JOB\s+PARAMS\s+GEN\s+STATUS\s+SHARDS\s+PROCESSED\s+LAST CHECKPOINT\s+HELD BY$/);
  assert.equal(lines.length, 3);
  assert.match(table.stdout, /count\s+\{"tag":"beta"\}\s+1\s+completed\s+1\/1\s+3,000\s+\S+/);

  const json = await runCli(['status', '--store', store, '--json']);
  const parsed = JSON.parse(json.stdout) as { instance: { job: string; params: { tag: string } }; processed: number }[];
  assert.deepEqual(parsed.map((row) => [row.instance.params.tag, row.processed]).sort(), [
    ['alpha', 3000],
    ['beta', 3000],
  ]);
});

test('ckpt runs: a table of runs with outcome, resume position, records; --param picks an instance', async () => {
  const table = await runCli(['runs', 'count', '--store', store, '--param', 'tag=alpha']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^RUN\s+GEN\s+SHARD\s+WORKER\s+STARTED\s+TOOK\s+OUTCOME\s+RESUMED FROM\s+RECORDS\s+REWORK\s+CHECKPOINTS\s+OVERHEAD/);
  assert.match(table.stdout, /main\s+\S+:\d+\s+.*completed\s+start\s+3,000\s+0\s+3\s/);
  assert.equal(table.stdout.trimEnd().split('\n').length, 2);

  const both = await runCli(['runs', 'count', '--store', store, '--json']);
  const runs = JSON.parse(both.stdout) as { params: { tag: string }; outcome: string; processed: number; checkpoints: number }[];
  assert.equal(runs.length, 2);
  assert.ok(runs.every((run) => run.outcome === 'completed' && run.processed === 3000 && run.checkpoints === 3));
});

test("ckpt runs: a run that ended before reading its shard's checkpoint (a held instance run again) does not read as resumed from the start", async () => {
  const dir = tempDir('ckpt-out-held-');
  const held = ['run', fixture('deprovision-limited.ts'), '--store', `sqlite:${join(dir, 'store.db')}`, '--quiet'];
  const heldEnv = { DIR_API_LOG: join(dir, 'directory.log'), DIR_API_DELAY_MS: '0' };
  // Held at the 101st disable, part-0 checkpointed near 100; run again, it claims part-0 and lets it go, held.
  // The hold's line names the shard whose checkpoint it gives (one of eight; it said 'checkpoint at
  // 99'), and a run that ran no shard gives none (it said 'checkpoint at start', part-0's being at 99).
  const lines: string[] = [];
  for (let round = 0; round < 2; round++) {
    const result = await runCli(held, { env: heldEnv });
    assert.equal(result.code, 7);
    lines.push(result.stderr.trim());
  }
  assert.match(lines[0] ?? '', /then run again \(checkpoint at part-0@\d+\)$/);
  assert.match(lines[1] ?? '', /then run again$/);
  const json = JSON.parse((await runCli(['runs', 'deprovision', '--store', `sqlite:${join(dir, 'store.db')}`, '--json'])).stdout) as {
    id: number;
    shard: string;
    outcome: string;
    resumedFrom: unknown;
    startProcessed: number;
  }[];
  const unread = json.find((run) => run.outcome === 'held' && run.resumedFrom === null && run.startProcessed > 0);
  assert.ok(unread !== undefined, `a held run that began past the start without reading its checkpoint: ${JSON.stringify(json)}`);
  const table = await runCli(['runs', 'deprovision', '--store', `sqlite:${join(dir, 'store.db')}`]);
  const row = table.stdout.split('\n').find((line) => line.startsWith(`${unread.id} `)) ?? '';
  assert.match(row, new RegExp(`${unread.shard}\\s+\\S+\\s+.*held\\s+-\\s+0\\s`), row);
});

test('ckpt events: the stored event log as a table, and JSON', async () => {
  const table = await runCli(['events', 'count', '--store', store, '--param', 'tag=beta']);
  assert.equal(table.code, 0, table.stderr);
  const types = table.stdout
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((line) => line.split(/\s{2,}/)[3]);
  assert.deepEqual(types, ['run:start', 'shard:complete', 'run:end', 'instance:complete']);

  const json = await runCli(['events', 'count', '--store', store, '--param', 'tag=beta', '--json']);
  const events = JSON.parse(json.stdout) as { type: string; data: { processed?: number } }[];
  assert.equal(events.find((event) => event.type === 'shard:complete')?.data.processed, 3000);

  // --limit keeps the newest N, still oldest first; the help says which N.
  const limited = await runCli(['events', 'count', '--store', store, '--param', 'tag=beta', '--json', '--limit', '2']);
  assert.deepEqual(
    (JSON.parse(limited.stdout) as { type: string }[]).map((event) => event.type),
    ['run:end', 'instance:complete'],
  );
  for (const command of ['events', 'runs']) assert.match((await runCli([command, '--help'])).stdout, /--limit <n>\s+show only the newest N/);
});

test('ckpt run off a TTY prints one JSON line per event, ending with the summary', async () => {
  const result = await runCli(['run', fixture('count-job.ts'), '--store', store, '--param', 'tag=gamma', '--every', '1000'], { env });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trimEnd().split('\n');
  const parsed = lines.map((line) => JSON.parse(line) as { type: string });
  assert.equal(parsed[0]?.type, 'run:start');
  assert.equal(parsed.filter((event) => event.type === 'checkpoint').length, 3);
  assert.equal(parsed.at(-1)?.type, 'summary');
  assert.match(result.stderr, /^completed count \{"tag":"gamma"\}\n {2}records {3}3,000 in/);
  assert.match(result.stderr, /checkpoints 3 written \(every 1000 records\), .* % of the run/);
});
