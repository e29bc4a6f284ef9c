// Shard names and errors come from jobs: whatever control sequences they hold, nothing the CLI
// prints sends one to the terminal (run's events and failure line, status, runs, events, dlq).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

/** What a terminal would act on: C0 but newline and tab, DEL, C1, bidi overrides. */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

test('control characters in shard names and errors are printed as \\u001b text by run, status, runs, events and dlq', { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-escapes-');
  const outputs: Array<[string, string]> = [];
  const skipping = ['--store', `sqlite:${join(dir, 'skip.db')}`];
  const failing = ['--store', `sqlite:${join(dir, 'fail.db')}`];
  const run = await runCli(['run', fixture('escape-job.ts'), ...skipping]);
  assert.equal(run.code, 0, run.stderr);
  outputs.push(['run', run.stdout + run.stderr]);
  const failed = await runCli(['run', fixture('escape-job.ts'), ...failing], { env: { CKPT_TEST_SKIP_LIMIT: '0' } });
  assert.notEqual(failed.code, 0);
  outputs.push(['run (failing)', failed.stdout + failed.stderr]);
  for (const args of [
    ['status'],
    ['status', '--json'],
    ['runs', 'escape-job'],
    ['runs', 'escape-job', '--json'],
    ['events', 'escape-job'],
    ['events', 'escape-job', '--json'],
    ['dlq', 'escape-job'],
    ['dlq', 'escape-job', '--json'],
  ]) {
    for (const store of [skipping, failing]) {
      const result = await runCli([...args, ...store]);
      outputs.push([args.join(' '), result.stdout + result.stderr]);
    }
  }
  for (const [what, text] of outputs) {
    const found = CONTROL.exec(text);
    assert.equal(
      found,
      null,
      `${what} printed U+${found?.[0].codePointAt(0)?.toString(16).padStart(4, '0')}: ${JSON.stringify(text.slice(Math.max(0, (found?.index ?? 0) - 40), (found?.index ?? 0) + 40))}`,
    );
  }
  const everything = outputs.map(([, text]) => text).join('\n');
  assert.match(everything, /evil\\u001b\]0;pwned\\u0007-\\u001b\[31mred/, 'the shard name is shown, escaped');
  assert.match(everything, /bad\\u001b\[2Jrecord\\u009b31m \\u202eevil/, 'the error is shown, escaped');
  // JSON output stays JSON, and reads back the very name that was stored.
  const events = (await runCli(['events', 'escape-job', '--json', ...skipping])).stdout;
  const shards = (JSON.parse(events) as Array<{ shard: string }>).map((event) => event.shard);
  assert.ok(shards.includes('evil\x1b]0;pwned\x07-\x1b[31mred'));
});

test('a shard name with a line break or a tab stays in its cell: each table row of runs, events and dlq is one line', { timeout: 60_000 }, async () => {
  const store = ['--store', `sqlite:${join(tempDir('ckpt-cell-lines-'), 'store.db')}`];
  const run = await runCli(['run', fixture('newline-shard-job.ts'), ...store]);
  assert.equal(run.code, 0, run.stderr);
  const rowsOf = async (args: string[]) => {
    const result = await runCli([...args, ...store]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trimEnd().split('\n');
  };
  // Two runs (one a shard), each on its own line under the header.
  const runs = await rowsOf(['runs', 'newline-shard-job']);
  assert.equal(runs.length, 3, runs.join('\n'));
  assert.ok(
    runs.slice(1).every((line) => /^\d+ +1 /.test(line)),
    runs.join('\n'),
  );
  // Every event row starts with its time.
  const events = await rowsOf(['events', 'newline-shard-job']);
  assert.ok(events.length > 4, events.join('\n'));
  assert.ok(
    events.slice(1).every((line) => /^\d{4}-\d\d-\d\d /.test(line)),
    events.join('\n'),
  );
  // Two dead letters, one a shard, then the line saying how to retry them.
  const letters = await rowsOf(['dlq', 'newline-shard-job']);
  assert.equal(letters.length, 4, letters.join('\n'));
  assert.ok(letters.join('\n').includes('two\\u000a1     1    forged\\u0009cell'), letters.join('\n'));
});
