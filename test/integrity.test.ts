// Guarantees 5 and 6: a corrupt newest checkpoint is skipped (and said so), a changed input file stops
// the run with exit 4 naming the change, `--on-drift restart` starts over, `--on-drift resume` goes on.
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

type Event = { type: string; data: Record<string, unknown> };
const events = (stdout: string): Event[] =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Event);
const summaryOf = (stdout: string) => events(stdout).find((event) => event.type === 'summary') as unknown as { shards: { position: number }[] };

function setup(records = 100) {
  const dir = tempDir();
  const file = join(dir, 'input.ndjson');
  writeFileSync(file, Array.from({ length: records }, (_, index) => JSON.stringify({ amount: index + 1 })).join('\n') + '\n');
  const dbPath = join(dir, 'store.db');
  const args = ['run', fixture('ndjson-sum.ts'), '--store', `sqlite:${dbPath}`, '--param', `file=${file}`];
  return { dir, file, dbPath, args };
}

function lastState(dbPath: string): { seq: number; state: { count: number; total: number } } {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  const row = db.prepare('SELECT seq, state FROM checkpoints ORDER BY seq DESC LIMIT 1').get() as { seq: number; state: string };
  db.close();
  return { seq: row.seq, state: JSON.parse(row.state) };
}

test('a corrupt newest checkpoint is never used: the previous good one is, and the run says so', { timeout: 30_000 }, async () => {
  const { dbPath, args } = setup();
  const crashed = await runCli(args, { env: { CRASH_AT: '55' } });
  assert.equal(crashed.signal, 'SIGKILL');
  const db = new DatabaseSync(dbPath);
  const newest = db.prepare('SELECT max(seq) AS seq FROM checkpoints').get() as { seq: number };
  assert.equal(newest.seq, 5, 'checkpoints at 10, 20, 30, 40, 50 records');
  // Tamper with the state by hand, as a bad disk or a bad edit would: the checksum no longer matches.
  db.prepare(`UPDATE checkpoints SET state = '{"count":50,"total":999999}' WHERE seq = 5`).run();
  db.close();

  const resumed = await runCli(args);
  assert.equal(resumed.code, 0, resumed.stderr);
  const seen = events(resumed.stdout);
  const corrupt = seen.find((event) => event.type === 'checkpoint:corrupt');
  assert.deepEqual(corrupt?.data, { shard: 'main', skipped: [5], usedSeq: 4 });
  assert.equal(seen.find((event) => event.type === 'run:resume')?.data.processed, 40, 'resumed from checkpoint 4 (40 records)');
  assert.deepEqual(lastState(dbPath).state, { count: 100, total: 5050 }, 'the tampered state was not used');
  const log = await runCli(['events', 'ndjson-sum', '--store', `sqlite:${dbPath}`]);
  assert.match(log.stdout, /checkpoint:corrupt\s+\{"skipped":\[5\],"usedSeq":4\}/);
});

test('a changed input file stops the resume with exit 4 naming the change; --on-drift restart starts over', { timeout: 30_000 }, async () => {
  const { file, dbPath, args } = setup();
  assert.equal((await runCli(args, { env: { CRASH_AT: '35' } })).signal, 'SIGKILL');
  appendFileSync(file, `${JSON.stringify({ amount: 1000 })}\n`);

  const refused = await runCli(args);
  assert.equal(refused.code, 4, refused.stderr);
  const lines = refused.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, no stack trace: ${refused.stderr}`);
  assert.match(lines[0] ?? '', /^ckpt: job ndjson-sum shard main no longer matches its checkpoint: source changed: fingerprint ndjson:size=\d+/);
  assert.match(lines[0] ?? '', /--on-drift restart/);
  assert.equal(lastState(dbPath).state.count, 30, 'the refused run changed nothing');

  const restarted = await runCli([...args, '--on-drift', 'restart']);
  assert.equal(restarted.code, 0, restarted.stderr);
  const seen = events(restarted.stdout);
  assert.deepEqual(seen.find((event) => event.type === 'drift')?.data.resolution, 'restart');
  assert.ok(
    seen.some((event) => event.type === 'run:start'),
    'started over from the beginning',
  );
  assert.ok(!seen.some((event) => event.type === 'run:resume'));
  assert.deepEqual(lastState(dbPath).state, { count: 101, total: 6050 });
  assert.equal(summaryOf(restarted.stdout).shards.length, 1);
});

test('a new job version is drift too; --on-drift resume continues and records it', { timeout: 30_000 }, async () => {
  const { dbPath, args } = setup();
  assert.equal((await runCli(args, { env: { CRASH_AT: '25' } })).signal, 'SIGKILL');
  const refused = await runCli(args, { env: { JOB_VERSION: '2' } });
  assert.equal(refused.code, 4);
  assert.match(refused.stderr, /job version changed from 1 to 2/);
  const resumed = await runCli([...args, '--on-drift', 'resume'], { env: { JOB_VERSION: '2' } });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(events(resumed.stdout).find((event) => event.type === 'run:resume')?.data.processed, 20);
  assert.deepEqual(lastState(dbPath).state, { count: 100, total: 5050 });
  const log = await runCli(['events', 'ndjson-sum', '--store', `sqlite:${dbPath}`]);
  assert.match(log.stdout, /drift\s+\{"changes":\["job version changed from 1 to 2"\],"resolution":"resume"\}/);
});
