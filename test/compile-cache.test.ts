// `ckpt` keeps Node's compile cache (bin/ckpt.js): in $NODE_COMPILE_CACHE or the OS temporary
// directory, never in the project it runs in; a cache directory that cannot be made costs nothing
// but the cache: same output, same exit, not a word about it.
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const env = { CKPT_TEST_RECORDS: '500' };

test('ckpt run keeps its compile cache in the OS temporary directory, and nothing in the project but its store', async () => {
  const project = tempDir('ckpt-cache-project-');
  const tmp = tempDir('ckpt-cache-tmp-');
  const result = await runCli(['run', fixture('count-job.ts'), '--quiet'], { cwd: project, env: { ...env, NODE_COMPILE_CACHE: undefined, TMPDIR: tmp } });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(readdirSync(project), ['.ckpt']);
  assert.ok(readdirSync(join(tmp, 'node-compile-cache'), { recursive: true }).length > 1, 'the compile cache was written');
});

test('a compile cache directory that cannot be made: the run is the same, and says nothing of it', async () => {
  const file = join(tempDir('ckpt-cache-'), 'a-file');
  writeFileSync(file, '');
  const store = `sqlite:${join(tempDir('ckpt-cache-store-'), 'store.db')}`;
  const result = await runCli(['run', fixture('count-job.ts'), '--store', store, '--quiet'], { env: { ...env, NODE_COMPILE_CACHE: join(file, 'cache') } });
  assert.equal(result.code, 0, result.stderr);
  // --quiet: the outcome line (on stderr) and nothing else.
  assert.equal(result.stderr, 'completed count {"tag":"default"}\n');
  assert.equal(result.stdout, '');
});
