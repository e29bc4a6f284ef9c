// Errors in the job's own code point at it: a syntax error at load and a TypeError in process()
// each print file:line:col in one line; the stored event and the dead letter carry the same
// location; CKPT_DEBUG=1 adds the full stack.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, isOneLineError, repoRoot, runCli, tempDir } from './helpers/cli.ts';

/** line:col of the `name` read on the fixture's line marked BUG (where V8 reports the TypeError). */
function bugLocation(): string {
  const lines = readFileSync(fixture('bug-job.ts'), 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes('// BUG'));
  assert.ok(index >= 0);
  return `test/fixtures/bug-job.ts:${index + 1}:${(lines[index] ?? '').indexOf('!.name') + 3}`;
}

test('a syntax error in a TypeScript job file: one line with file:line:col, exit 2', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'broken.ts'), "export default {\n  name: 'broken',\n  process(n: number) {\n    return n +;\n  },\n};\n");
  const result = await runCli(['run', 'broken.ts', '--store', 'sqlite:s.db'], { cwd: dir });
  assert.equal(result.code, 2, result.stderr);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /^ckpt: cannot load job file broken\.ts: SyntaxError: Expression expected at broken\.ts:4:15\n$/);
});

test('a syntax error in a JavaScript job file (V8 reports it, not the type stripper): file:line:col too', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'broken.mjs'), "const a = 1;\nexport default { name: 'b' };\n  const a = 2;\n");
  const result = await runCli(['run', 'broken.mjs', '--store', 'sqlite:s.db'], { cwd: dir });
  assert.equal(result.code, 2, result.stderr);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /^ckpt: cannot load job file broken\.mjs: SyntaxError: Identifier 'a' has already been declared at broken\.mjs:3:9\n$/);

  const debug = await runCli(['run', 'broken.mjs', '--store', 'sqlite:s.db'], { cwd: dir, env: { CKPT_DEBUG: '1' } });
  assert.equal(debug.code, 2);
  assert.match(
    debug.stderr,
    /^ckpt: cannot load job file .*\nSyntaxError: Identifier 'a' has already been declared\n {4}at /,
    'CKPT_DEBUG=1: the stack follows the line',
  );
});

test('a TypeError in process(): the failure line, the stored event and the run show file:line:col; CKPT_DEBUG=1 the stack', async () => {
  const where = bugLocation();
  const store = `sqlite:${join(tempDir(), 's.db')}`;
  const result = await runCli(['run', fixture('bug-job.ts'), '--store', store, '--quiet'], { cwd: repoRoot });
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.equal(
    lines[0],
    `failed bug-job: record at position 3 failed: TypeError: Cannot read properties of undefined (reading 'name') at ${where}; the checkpoint stays at start, fix the cause and run again to resume`,
  );

  const events = await runCli(['events', 'bug-job', '--store', store, '--json'], { cwd: repoRoot });
  const recordError = (JSON.parse(events.stdout) as { type: string; data: { error?: string } }[]).find((event) => event.type === 'record:error');
  assert.equal(recordError?.data.error, `TypeError: Cannot read properties of undefined (reading 'name') at ${where}`);

  const debug = await runCli(['run', fixture('bug-job.ts'), '--store', store, '--quiet'], { cwd: repoRoot, env: { CKPT_DEBUG: '1' } });
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, new RegExp(`^failed bug-job: .* at ${where.replace(/\./g, '\\.')}; .*\nTypeError: Cannot read properties`));
  assert.match(debug.stderr, /\n {4}at .*bug-job\.ts:\d+:\d+\)\n {4}at /, 'the whole stack, the job frame first');
});

test('a dead-lettered TypeError: the letter says where in the job file it was thrown', async () => {
  const where = bugLocation();
  const store = `sqlite:${join(tempDir(), 's.db')}`;
  const run = await runCli(['run', fixture('bug-job.ts'), '--store', store, '--quiet'], { cwd: repoRoot, env: { CKPT_TEST_SKIP: '1' } });
  assert.equal(run.code, 0, run.stderr);
  const dlq = await runCli(['dlq', 'bug-job', '--store', store, '--json'], { cwd: repoRoot });
  const letters = JSON.parse(dlq.stdout) as { error: string }[];
  assert.equal(letters.length, 1, dlq.stdout);
  assert.equal(letters[0]?.error, `TypeError: Cannot read properties of undefined (reading 'name') at ${where}`);
});
