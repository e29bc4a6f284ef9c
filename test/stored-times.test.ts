// Times and durations a store holds are numbers the CLI formats; one edited by hand into what no
// date holds (1e300, text) is shown as what was read, so a tampered log still lists and exports
// (ckpt audit --verify names the edit), and no table reads 'NaNhNaNm'.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

test('an event or run time edited past what a date holds: ckpt events and runs still answer (exit 0), audit --export writes it and names the edit (exit 1), as --verify does', {
  timeout: 60_000,
}, async () => {
  const dir = tempDir('ckpt-stored-times-');
  const path = join(dir, 's.db');
  const store = ['--store', `sqlite:${path}`];
  const first = await runCli(['run', fixture('count-job.ts'), ...store, '--quiet'], { env: { CKPT_TEST_RECORDS: '20' } });
  assert.equal(first.code, 0, first.stderr);
  const edit = (file: string, sql: string) => {
    const db = new DatabaseSync(file);
    db.exec(sql);
    db.close();
  };
  edit(`${path}.effects`, 'UPDATE events SET at = 1e300 WHERE id = (SELECT max(id) FROM events)');
  edit(path, "UPDATE runs SET started_at = 1e300, ended_at = 'abc', checkpoint_ms = 'x'");

  const events = await runCli(['events', 'count', ...store]);
  assert.equal(events.code, 0, events.stderr);
  assert.match(events.stdout, /invalid time \(1e\+300\)/);
  const runs = await runCli(['runs', 'count', ...store]);
  assert.equal(runs.code, 0, runs.stderr);
  assert.match(runs.stdout, /invalid time \(1e\+300\)/);
  assert.doesNotMatch(runs.stdout, /NaN/);
  for (const format of ['csv', 'ndjson']) {
    const out = join(dir, `export.${format}`);
    // Written whole, then exit 1 naming the edited event, as an export of any broken chain.
    const exported = await runCli(['audit', 'count', ...store, '--export', format, '--out', out]);
    assert.equal(exported.code, 1, exported.stderr);
    assert.match(exported.stderr, /event \d+ .*its content does not match its hash.*the event log is not intact/);
    assert.match(readFileSync(out, 'utf8'), /invalid time \(1e\+300\)/);
  }
  const verified = await runCli(['audit', 'count', ...store, '--verify']);
  assert.equal(verified.code, 1, verified.stderr);
  assert.match(verified.stderr, /its content does not match its hash/);
});
