// The package works as published: packed, installed into a fresh project, imported as
// 'checkpointed', and its `ckpt` bin runs a job file there.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from './helpers/cli.ts';

test('npm pack → npm install → import and ckpt run, as a user would', { timeout: 180_000 }, () => {
  const packDir = tempDir('ckpt-pack-');
  const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } });
  npm(['pack', '--pack-destination', packDir, '--ignore-scripts'], repoRoot);
  const tarball = readdirSync(packDir).find((name) => name.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack made a tarball');

  const project = tempDir('ckpt-user-');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  npm(['install', '--no-audit', '--no-fund', join(packDir, tarball)], project);

  const imported = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "const m = await import('checkpointed'); console.log(typeof m.defineJob, typeof m.runJob, typeof m.range)"],
    {
      cwd: project,
      encoding: 'utf8',
    },
  );
  assert.equal(imported.stdout.trim(), 'function function function', imported.stderr);

  writeFileSync(
    join(project, 'job.ts'),
    `import { defineJob, range } from 'checkpointed';
export default defineJob<number, unknown, { sum: number }>({
  name: 'user-job',
  source: () => range(0, 1000),
  initialState: () => ({ sum: 0 }),
  process(n, ctx) { ctx.state.sum += n; },
});
`,
  );
  const run = spawnSync(join(project, 'node_modules', '.bin', 'ckpt'), ['run', 'job.ts', '--quiet'], { cwd: project, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /^completed user-job/);
});
