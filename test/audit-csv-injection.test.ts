// `ckpt audit --export csv` is opened in spreadsheets: no cell may start as a formula does
// (=, +, -, @, tab, CR, OWASP's list); such a text cell gets a ' in front and is otherwise intact.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { FORMULAS } from './fixtures/formula-job.ts';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

test('audit --export csv neutralises cells that start like a formula, and only those', { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-csv-');
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const run = await runCli(['run', fixture('formula-job.ts'), ...store]);
  assert.equal(run.code, 0, run.stderr);
  const exported = await runCli(['audit', 'formula-job', '--export', 'csv', ...store]);
  assert.equal(exported.code, 0, exported.stderr);
  const rows = parse(exported.stdout, { columns: true }) as Record<string, string>[];
  assert.ok(rows.length > FORMULAS.length * 2, `${rows.length} rows`);
  for (const row of rows) {
    for (const [column, cell] of Object.entries(row)) assert.doesNotMatch(cell, /^[=+\-@\t\r]/, `${column} starts as a formula: ${JSON.stringify(cell)}`);
  }
  const shards = new Set(rows.map((row) => row.shard));
  for (const formula of FORMULAS) assert.ok(shards.has(`'${formula}`), `the shard ${JSON.stringify(formula)} is kept, with a ' in front`);
  assert.ok(rows.some((row) => row.key === `'=HYPERLINK("http://evil.example","open")-0`));
  assert.ok(
    rows.every((row) => /^\d+$/.test(row.id ?? '') && row.details?.startsWith('{')),
    'other cells unchanged',
  );
});
