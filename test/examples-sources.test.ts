// The examples as documented: the keyset-SQL and CSV examples run as the README says (here on small inputs and a
// temporary store), and a second run of a completed instance does nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, runCli, tempDir } from './helpers/cli.ts';

test('examples/stale-admins.ts reads its directory table by keyset and completes', { timeout: 60_000 }, async () => {
  const store = `sqlite:${join(tempDir(), 'store.db')}`;
  const args = ['run', join(repoRoot, 'examples', 'stale-admins.ts'), '--store', store, '--param', 'accounts=3000'];
  const first = await runCli([...args, '--every', '250']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /^completed stale-admins .*\n\s+records\s+3,000 /);
  const again = await runCli(args);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already complete/);
});

test('examples/import-users.ts imports its CSV export and dead-letters the one broken row', { timeout: 60_000 }, async () => {
  const store = `sqlite:${join(tempDir(), 'store.db')}`;
  const run = await runCli(['run', join(repoRoot, 'examples', 'import-users.ts'), '--store', store, '--param', 'users=2000']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /skipped\s+1 records to dead letters/);
  const letters = await runCli(['dlq', 'import-users', '--store', store, '--param', 'users=2000', '--json']);
  assert.equal(letters.code, 0, letters.stderr);
  assert.match(letters.stdout, /E1000,\\"Broken \\"quote,Finance,/);
});
