// The API reference is generated from the types (`npm run docs`, TypeDoc) without a warning: every
// type the public API mentions is exported and documented, so the reference has no holes. The
// same site holds the guide pages (README.md as its front page, docs/*.md), their links rewritten
// to the site's pages; a link or an anchor TypeDoc cannot resolve is a warning, so it fails here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from './helpers/cli.ts';

test('npm run docs: TypeDoc builds the reference and the guide pages with no warning, covering the library API', { timeout: 120_000 }, () => {
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
  for (const guide of ['jobs', 'sources', 'effects', 'crash-testing', 'operating', 'scaling-out', 'guarantees', 'benchmarks', 'library', 'DESIGN']) {
    assert.ok(existsSync(join(out, 'documents', `${guide}.html`)), `docs/${guide}.md is a page of the site`);
  }
  const front = readFileSync(join(out, 'index.html'), 'utf8');
  assert.match(front, /Long batch jobs that save their progress/, "the README is the site's front page");
  assert.match(front, /href="documents\/jobs\.html#checkpoints"/, "the README's links lead to the guide pages");
  const definition = readFileSync(join(out, 'interfaces', 'checkpointed.JobDefinition.html'), 'utf8');
  assert.match(definition, /Runs at the start of every shard run/, "setup's doc comment reaches the reference");
});
