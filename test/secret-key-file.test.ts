// The secret key of a SQLite store (`<store>.key`, or CKPT_SECRET_KEY) is never silently
// replaced: a store that recorded a key, or holds what one sealed, refuses a run whose key is
// missing or another (exit 4, one line saying how to get it back), and makes no new key file.
// A malformed CKPT_SECRET_KEY is refused before anything is opened (exit 2).
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

const STEP_SECRET = 'sk_STEP_9d1e7c';

function secretJob(dir: string) {
  const storePath = join(dir, 'store.db');
  const run = ['run', fixture('secret-job.ts'), '--store', `sqlite:${storePath}`, '--param', 'token=t0k3n', '--quiet'];
  return { storePath, keyFile: `${storePath}.key`, run };
}

/** A run SIGKILLed after record 3's step sealed its secret: the next run must read it back. */
async function crashedAfterSealing(dir: string) {
  const job = secretJob(dir);
  const crashed = await runCli(job.run, { env: { STEP_SECRET, CRASH_AT: '3' } });
  assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
  assert.ok(existsSync(job.keyFile), 'the first sealed secret made the key file');
  return job;
}

test('a deleted <store>.key is refused, never replaced, and the restored key resumes the run', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const job = await crashedAfterSealing(dir);
  const backup = join(dir, 'backup.key');
  copyFileSync(job.keyFile, backup);
  rmSync(job.keyFile);

  for (const attempt of [1, 2]) {
    const refused = await runCli(job.run, { env: { STEP_SECRET } });
    assert.equal(refused.code, 4, `attempt ${attempt}: ${refused.stderr}`);
    assert.ok(isOneLineError(refused.stderr), refused.stderr);
    assert.match(refused.stderr, /secret key file .*store\.db\.key is missing/);
    assert.match(refused.stderr, /restore .*store\.db\.key from a backup/);
    assert.ok(!existsSync(job.keyFile), `attempt ${attempt}: no new key was made in its place`);
  }
  // dlq --retry runs the job's steps too: refused the same way.
  const retry = await runCli(['dlq', fixture('secret-job.ts'), '--retry', '--store', `sqlite:${job.storePath}`, '--param', 'token=t0k3n'], {
    env: { STEP_SECRET },
  });
  assert.equal(retry.code, 4, retry.stderr);
  assert.ok(!existsSync(job.keyFile));

  // ckpt status would record the crashed run in the audit log: not without its key, which would
  // break the chain for good ("rebuilt without the secret key").
  const status = await runCli(['status', '--store', `sqlite:${job.storePath}`]);
  assert.equal(status.code, 4, status.stderr);
  assert.ok(isOneLineError(status.stderr), status.stderr);
  assert.match(status.stderr, /audit log is keyed with its secret key .* which is missing here/);
  // So does every command that reaps (runs, events, dlq); audit only reads, and says what it lacks.
  const runs = await runCli(['runs', 'secret-job', '--store', `sqlite:${job.storePath}`]);
  assert.equal(runs.code, 4, runs.stderr);
  const verify = await runCli(['audit', 'secret-job', '--verify', '--store', `sqlite:${job.storePath}`]);
  assert.equal(verify.code, 2, verify.stderr);
  assert.match(verify.stderr, /keyed with the store's secret key, which is not available here/);
  assert.ok(!existsSync(job.keyFile));

  copyFileSync(backup, job.keyFile);
  const resumed = await runCli(job.run, { env: { STEP_SECRET } });
  // The fixture fails a record whose replayed step does not give back its real secret.
  assert.equal(resumed.code, 0, resumed.stderr);
  const audit = await runCli(['audit', 'secret-job', '--store', `sqlite:${job.storePath}`, '--verify']);
  assert.equal(audit.code, 0, audit.stderr);
  assert.match(audit.stdout, /chain intact; .*keyed with the store's secret key/);
});

test('a key file that is not the store key (another store, damaged) or another CKPT_SECRET_KEY is refused', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const job = await crashedAfterSealing(dir);
  const original = readFileSync(job.keyFile);

  writeFileSync(job.keyFile, `${'ab'.repeat(32)}\n`);
  const other = await runCli(job.run, { env: { STEP_SECRET } });
  assert.equal(other.code, 4, other.stderr);
  assert.ok(isOneLineError(other.stderr), other.stderr);
  assert.match(other.stderr, /is not the key this store's secrets .* were sealed with \(fingerprint [0-9a-f]{16}\)/);

  writeFileSync(job.keyFile, '');
  const damaged = await runCli(job.run, { env: { STEP_SECRET } });
  assert.equal(damaged.code, 4, damaged.stderr);
  assert.match(damaged.stderr, /key file .* is damaged .*restore it from a backup/);

  writeFileSync(job.keyFile, original);
  const envKey = await runCli(job.run, { env: { STEP_SECRET, CKPT_SECRET_KEY: 'e'.repeat(64) } });
  assert.equal(envKey.code, 4, envKey.stderr);
  assert.match(envKey.stderr, /secret key from CKPT_SECRET_KEY .* is not the key/);

  const resumed = await runCli(job.run, { env: { STEP_SECRET } });
  assert.equal(resumed.code, 0, resumed.stderr);
});

test('a store that sealed secrets before key fingerprints were recorded still refuses a missing key', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const job = await crashedAfterSealing(dir);
  // As a store from before this record: no fingerprint in the side file.
  const side = new DatabaseSync(`${job.storePath}.effects`);
  assert.equal(side.prepare("DELETE FROM side_meta WHERE key = 'secret_key_fingerprint'").run().changes, 1);
  side.close();
  rmSync(job.keyFile);
  const refused = await runCli(job.run, { env: { STEP_SECRET } });
  assert.equal(refused.code, 4, refused.stderr);
  assert.match(refused.stderr, /is missing, but the store holds secrets or audit events sealed with a key/);
  assert.ok(!existsSync(job.keyFile));
});

test('a job that seals nothing makes no key file; a new store gets one at its first secret', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const plain = await runCli(['run', fixture('count-job.ts'), '--store', `sqlite:${join(dir, 'plain.db')}`, '--quiet']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.endsWith('.key')),
    [],
  );
  const job = secretJob(dir);
  const first = await runCli(job.run, { env: { STEP_SECRET } });
  assert.equal(first.code, 0, first.stderr);
  assert.match(readFileSync(job.keyFile, 'utf8'), /^[0-9a-f]{64}$/);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.endsWith('.tmp')),
    [],
    'no temporary key file is left',
  );
});

test('a malformed CKPT_SECRET_KEY is refused with what a valid one is', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const job = secretJob(dir);
  for (const [key, args] of [
    ['short', job.run],
    ['short', ['status', '--store', `sqlite:${job.storePath}`]],
    [`${'k'.repeat(40)}\n`, job.run],
    [`two words ${'x'.repeat(40)}`, ['audit', 'secret-job', '--verify', '--store', `sqlite:${job.storePath}`]],
  ] as const) {
    const result = await runCli([...args], { env: { STEP_SECRET, CKPT_SECRET_KEY: key } });
    assert.equal(result.code, 2, `${JSON.stringify(key)} ${args[0]}: ${result.stderr}`);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, /CKPT_SECRET_KEY must be at least 32 characters with no spaces or control characters/);
    assert.ok(!result.stderr.includes(key.trim()), 'the key itself is not printed');
  }
  assert.ok(!existsSync(job.storePath), 'nothing was opened or created');
});
