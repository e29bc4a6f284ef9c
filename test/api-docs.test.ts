// The API reference is generated from the types (`npm run docs`, TypeDoc) without a warning: every
// type the public API mentions is exported and documented, so the reference has no holes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from './helpers/cli.ts';

test('npm run docs: TypeDoc builds the reference with no warning, covering the library API', { timeout: 120_000 }, () => {
  const out = tempDir('ckpt-api-');
  const typedoc = join(repoRoot, 'node_modules', 'typedoc', 'bin', 'typedoc');
  const run = spawnSync(process.execPath, [typedoc, '--out', out, '--treatWarningsAsErrors'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  for (const page of [
    'functions/checkpointed.runJob.html',
    'functions/checkpointed.openStore.html',
    'functions/checkpointed.shutdownOnSignals.html',
    'interfaces/checkpointed.EventMap.html',
    'interfaces/checkpointed.RunOptions.html',
    'classes/checkpointed_sqlite.SqliteStore.html',
    'classes/checkpointed_postgres.PostgresStore.html',
    'classes/checkpointed_mysql.MysqlStore.html',
  ]) {
    assert.ok(existsSync(join(out, page)), `${page} was generated`);
  }
  const definition = readFileSync(join(out, 'interfaces', 'checkpointed.JobDefinition.html'), 'utf8');
  assert.match(definition, /Runs at the start of every shard run/, "setup's doc comment reaches the reference");
});
