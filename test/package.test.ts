// The package works as published: packed, installed into a fresh project (without pg), imported
// as 'checkpointed' and through its backend paths, and its `ckpt` bin runs a job file there.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
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
    [
      '--input-type=module',
      '-e',
      // No database driver loads with the package: not pg (not even installed), not node:sqlite.
      "const m = await import('checkpointed'); console.log(typeof m.defineJob, typeof m.runJob, typeof m.range, process.moduleLoadList.some((name) => /sqlite/.test(name)))",
    ],
    {
      cwd: project,
      encoding: 'utf8',
    },
  );
  assert.equal(imported.stdout.trim(), 'function function function false', imported.stderr);

  // Drivers are optional peers: a SQLite user's project does not have them, and 'checkpointed' (and
  // its sqlite, postgres and mysql paths) import without them; only opening such a store asks for its driver.
  for (const driver of ['pg', 'mysql2']) assert.equal(existsSync(join(project, 'node_modules', driver)), false, `${driver} is not installed with checkpointed`);
  const paths = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { SqliteStore } = await import('checkpointed/sqlite');
       const { PostgresStore } = await import('checkpointed/postgres');
       const { MysqlStore } = await import('checkpointed/mysql');
       const { openStore } = await import('checkpointed');
       // Types only: they load, and hold no value.
       const types = Object.keys(await import('checkpointed/types')).length + Object.keys(await import('checkpointed/store')).length;
       const store = await openStore('memory:');
       console.log(typeof SqliteStore, typeof PostgresStore, typeof MysqlStore, types, store.location);
       await store.close();
       await openStore('postgres://127.0.0.1:1/nothing').catch((error) => console.log(error.name, error.message));
       await openStore('mysql://127.0.0.1:1/nothing').catch((error) => console.log(error.name, error.message));`,
    ],
    { cwd: project, encoding: 'utf8' },
  );
  assert.equal(
    paths.stdout.trim(),
    'function function function 0 :memory:\nUsageError a postgres:// store needs the pg package: npm install pg\nUsageError a mysql:// store needs the mysql2 package: npm install mysql2',
    paths.stderr,
  );

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
  // The default store, as for a user with no store configured (a postgres:// DATABASE_URL here
  // would ask for pg, which this project rightly does not have).
  const { DATABASE_URL: _url, CKPT_STORE: _store, ...userEnv } = process.env;
  const run = spawnSync(join(project, 'node_modules', '.bin', 'ckpt'), ['run', 'job.ts', '--quiet'], { cwd: project, encoding: 'utf8', env: userEnv });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /^completed user-job/);
});
