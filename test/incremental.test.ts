// Incremental runs (`incremental: true`): `ckpt run` on a completed instance starts a new
// generation where the last one ended. Over sqlTable (the incremental-reconcile example), three
// runs with rows changed between them each apply exactly the changed rows, a SIGKILLed run resumes
// inside its generation, and a run with nothing new says so. Over an NDJSON file, lines appended
// are read alone; a file rewritten instead is drift (exit 4).
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { changeRows } from '../examples/incremental-reconcile.ts';
import { ExitCode } from '../src/errors.ts';
import { fixture, repoRoot, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const example = join(repoRoot, 'examples', 'incremental-reconcile.ts');

/** The run's summary line (`--json`). */
function summaryOf(stdout: string): { generation: number; records: number; outcome: string; incremental?: { from: number; nothingNew: boolean } } {
  const line = stdout.split('\n').find((text) => text.includes('"type":"summary"'));
  assert.ok(line, `no summary in ${stdout.slice(-500)}`);
  return JSON.parse(line);
}

function appliedBetween(store: string, from: number, to: number): number {
  const db = new DatabaseSync(store, { readOnly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM applied_changes WHERE updated_at BETWEEN ? AND ?').get(from, to) as { n: number }).n;
  } finally {
    db.close();
  }
}

test('incremental sqlTable: three runs apply exactly the rows changed before each; a SIGKILLed run resumes in its generation; nothing new says so', {
  timeout: 120_000,
}, async () => {
  const dir = tempDir('ckpt-incremental-');
  const hr = join(dir, 'hr.db');
  const db = new DatabaseSync(hr);
  db.exec(`CREATE TABLE entitlements (id INTEGER PRIMARY KEY, account TEXT NOT NULL, entitlement TEXT NOT NULL,
    active INTEGER NOT NULL, updated_at INTEGER NOT NULL)`);
  db.close();
  const store = join(dir, 'store.db');
  const args = ['run', example, '--store', `sqlite:${store}`, '--param', `db=sqlite:${hr}`, '--json', '--every', '50'];

  changeRows(hr, 2000);
  const first = summaryOf((await runCli(args)).stdout);
  assert.deepEqual([first.generation, first.records, first.incremental], [1, 2000, undefined]);

  // Second night: 1,000 changes (a quarter of them updates of earlier rows, read again), and the
  // run is SIGKILLed twice after checkpoints; each resume stays in generation 2.
  changeRows(hr, 1000);
  for (let kill = 0; kill < 2; kill++) {
    const { child, done } = spawnCli(args, { env: { RECONCILE_PACE: '2000' } });
    await waitForOutput(child, (out) => (out.match(/"type":"checkpoint"/g) ?? []).length >= 2);
    child.kill('SIGKILL');
    assert.equal((await done).signal, 'SIGKILL');
  }
  const second = await runCli(args);
  assert.equal(second.code, 0, second.stderr);
  const secondSummary = summaryOf(second.stdout);
  assert.equal(secondSummary.generation, 2, 'the resumed run finished generation 2, not a new one');
  assert.ok(secondSummary.records > 0 && secondSummary.records < 1000, `the resume did the rest: ${secondSummary.records}`);
  assert.equal(appliedBetween(store, 2001, 3000), 1000, 'every change of the second night applied once');

  changeRows(hr, 500);
  const third = summaryOf((await runCli(args)).stdout);
  assert.deepEqual([third.generation, third.records, third.incremental], [3, 500, { from: 2, nothingNew: false }]);
  assert.equal(appliedBetween(store, 0, 2000), 2000);
  assert.equal(appliedBetween(store, 3001, 3500), 500);

  const quiet = await runCli(args.filter((arg) => arg !== '--json'));
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.match(quiet.stdout + quiet.stderr, /completed incremental-reconcile .*: nothing new since generation 3 ended/);
  assert.equal(appliedBetween(store, 0, 1e9), 3500, 'each change applied exactly once over four generations');
});

test('incremental NDJSON: appended lines are read alone; a file rewritten instead is drift (exit 4)', { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-incremental-file-');
  const file = join(dir, 'lines.ndjson');
  const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `{"n":${from + i}}\n`).join('');
  writeFileSync(file, lines(1, 3));
  const args = ['run', fixture('incremental-lines.ts'), '--store', `sqlite:${join(dir, 'store.db')}`, '--param', `file=${file}`, '--json'];
  assert.equal(summaryOf((await runCli(args)).stdout).records, 3);
  appendFileSync(file, lines(4, 5));
  const appended = await runCli(args);
  assert.equal(appended.code, 0, appended.stderr);
  assert.deepEqual([summaryOf(appended.stdout).generation, summaryOf(appended.stdout).records], [2, 2]);
  writeFileSync(file, lines(10, 20));
  const rewritten = await runCli(args);
  assert.equal(rewritten.code, ExitCode.refused, rewritten.stderr);
  assert.match(rewritten.stderr, /source was rewritten, not added to, since the last generation ended/);
});

/** The `n`s in the job's `seen` table, in order, and its dead letters. */
function seenIn(store: string): { seen: number[]; deadLetters: number } {
  const db = new DatabaseSync(store, { readOnly: true });
  try {
    const seen = (db.prepare('SELECT n FROM seen ORDER BY n').all() as { n: number }[]).map((row) => Number(row.n));
    const deadLetters = (db.prepare('SELECT count(*) AS n FROM dead_letters').get() as { n: number }).n;
    return { seen, deadLetters };
  } finally {
    db.close();
  }
}

for (const format of ['ndjson', 'csv'] as const) {
  test(`incremental ${format}: a last line still being written (no newline yet) is left for the next run, then read whole`, { timeout: 60_000 }, async () => {
    const dir = tempDir('ckpt-incremental-partial-');
    const file = join(dir, `lines.${format}`);
    const store = join(dir, 'store.db');
    const line = (n: number) => (format === 'csv' ? `${n}\n` : `{"n":${n}}\n`);
    // A writer mid-line: record 40's first bytes are there, its end and newline not yet.
    writeFileSync(file, (format === 'csv' ? 'n\n' : '') + line(1) + line(2) + line(3) + (format === 'csv' ? '4' : '{"n":4'));
    const args = ['run', fixture('incremental-lines.ts'), '--store', `sqlite:${store}`, '--param', `file=${file}`, '--param', `format=${format}`, '--json'];
    const first = await runCli(args);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(summaryOf(first.stdout).records, 3, 'the half-written line was not read');
    assert.deepEqual(seenIn(store), { seen: [1, 2, 3], deadLetters: 0 });
    appendFileSync(file, (format === 'csv' ? '0\n' : '0}\n') + line(5));
    const second = await runCli(args);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual([summaryOf(second.stdout).generation, summaryOf(second.stdout).records], [2, 2]);
    assert.deepEqual(seenIn(store), { seen: [1, 2, 3, 5, 40], deadLetters: 0 }, 'record 40 read whole, once');
  });
}

test('incremental csv: a record whose writer stopped after a line break inside its quoted field waits for the next run, then is read whole', {
  timeout: 60_000,
}, async () => {
  const dir = tempDir('ckpt-incremental-quoted-');
  const file = join(dir, 'lines.csv');
  const store = join(dir, 'store.db');
  // Record 2's quoted note has its first line written, its closing quote and line break not yet.
  writeFileSync(file, 'n,note\n1,a\n2,"line one\n');
  const args = ['run', fixture('incremental-lines.ts'), '--store', `sqlite:${store}`, '--param', `file=${file}`, '--param', 'format=csv', '--json'];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(summaryOf(first.stdout).records, 1, 'the open quoted record was not read');
  assert.deepEqual(seenIn(store), { seen: [1], deadLetters: 0 });
  appendFileSync(file, 'line two"\n3,c\n');
  const second = await runCli(args);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual([summaryOf(second.stdout).generation, summaryOf(second.stdout).records], [2, 2]);
  assert.deepEqual(seenIn(store), { seen: [1, 2, 3], deadLetters: 0 }, 'record 2 read whole, once, and 3 after it');
});
