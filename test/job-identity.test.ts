// A checkpoint belongs to the code that made it, not only to a job name: another job file with
// the same name and params, or the same file whose initial state has another shape, is refused
// (exit 4, one line naming what changed) instead of skipping the first job's records and taking
// its state, or being told "already complete" for work it never did.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

const storeArgs = () => ['--store', `sqlite:${join(tempDir('ckpt-identity-'), 'store.db')}`, '--quiet'];

test('another job file with the same name does not take over a half-done checkpoint', { timeout: 60_000 }, async () => {
  const store = storeArgs();
  const crashed = await runCli(['run', fixture('identity-a.ts'), ...store], { env: { CRASH_AT: '25' } });
  assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);

  const other = await runCli(['run', fixture('identity-b.ts'), ...store]);
  assert.equal(other.code, 4, other.stderr);
  assert.ok(isOneLineError(other.stderr), other.stderr);
  assert.match(other.stderr, /no longer matches its checkpoint: job file changed from identity-a\.ts to identity-b\.ts/);

  // Its own code resumes it.
  const own = await runCli(['run', fixture('identity-a.ts'), ...store]);
  assert.equal(own.code, 0, own.stderr);
  const db = new DatabaseSync(store[1]?.replace(/^sqlite:/, '') ?? '');
  const state = db.prepare('SELECT state FROM checkpoints ORDER BY seq DESC LIMIT 1').get() as { state: string };
  db.close();
  assert.deepEqual(JSON.parse(state.state), { count: 50 });
});

test('a job whose initial state changed shape is refused on resume, naming both shapes', { timeout: 60_000 }, async () => {
  const store = storeArgs();
  assert.equal((await runCli(['run', fixture('identity-a.ts'), ...store], { env: { CRASH_AT: '25' } })).signal, 'SIGKILL');
  const changed = await runCli(['run', fixture('identity-a.ts'), ...store], { env: { IDENTITY_STATE: 'v2' } });
  assert.equal(changed.code, 4, changed.stderr);
  assert.ok(isOneLineError(changed.stderr), changed.stderr);
  assert.match(changed.stderr, /initial state's shape changed from \{count:number\} to \{counts:\{after:number,before:number\}\}/);
  assert.match(changed.stderr, /--on-drift restart/);
});

test('a completed instance is not "already complete" to another job file of the same name', { timeout: 60_000 }, async () => {
  const store = storeArgs();
  assert.equal((await runCli(['run', fixture('identity-a.ts'), ...store])).code, 0);
  const again = await runCli(['run', fixture('identity-a.ts'), ...store]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already complete/);

  const other = await runCli(['run', fixture('identity-b.ts'), ...store]);
  assert.equal(other.code, 4, other.stderr);
  assert.ok(isOneLineError(other.stderr), other.stderr);
  assert.match(other.stderr, /was completed by other code: job file changed from identity-a\.ts to identity-b\.ts\. Run with --rerun/);
  const rerun = await runCli(['run', fixture('identity-b.ts'), ...store, '--rerun']);
  assert.equal(rerun.code, 0, rerun.stderr);
});

test('a new version with a migrate hook resumes a half-done instance with its state carried over', { timeout: 60_000 }, async () => {
  const store = storeArgs();
  assert.equal((await runCli(['run', fixture('identity-a.ts'), ...store], { env: { CRASH_AT: '25' } })).signal, 'SIGKILL');
  const upgraded = await runCli(['run', fixture('identity-a.ts'), ...store], { env: { IDENTITY_STATE: 'v2', JOB_VERSION: '2', IDENTITY_MIGRATE: '1' } });
  assert.equal(upgraded.code, 0, upgraded.stderr);
  const path = store[1]?.replace(/^sqlite:/, '') ?? '';
  const db = new DatabaseSync(path);
  const state = db.prepare('SELECT state FROM checkpoints ORDER BY seq DESC LIMIT 1').get() as { state: string };
  db.close();
  // Checkpointed at 20 by version (none); version 2 did the other 30.
  assert.deepEqual(JSON.parse(state.state), { counts: { before: 20, after: 30 } });
  const events = await runCli(['events', 'identity', '--store', store[1] ?? '', '--json']);
  const drift = (JSON.parse(events.stdout) as { type: string; data: { resolution?: string; fromVersion?: string | null } }[]).find(
    (event) => event.type === 'drift',
  );
  assert.deepEqual([drift?.data.resolution, drift?.data.fromVersion], ['migrate', null]);
});
