// The PostgreSQL store seen by a user: the URL's ?schema=, DATABASE_URL, a schema from a newer
// checkpointed refused (exit 4, naming both versions), a bad schema name (exit 2), an unreachable
// server (exit 1) — each one line, no stack trace.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fixture, isOneLineError, runCli } from './helpers/cli.ts';
import { freePort, freshDatabase, withPool } from './helpers/postgres.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});
const env = { CKPT_TEST_SHARDS: '3', CKPT_TEST_RECORDS: '20', CKPT_TEST_SQL: 'postgres' };

async function database() {
  const created = await freshDatabase();
  cleanups.push(created.drop);
  await withPool(created.url, (pool) => pool.query('CREATE TABLE out (shard TEXT NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL)'));
  return created.url;
}

test('DATABASE_URL names the store; ?schema= puts its tables in that schema; status reads it back', async () => {
  const url = await database();
  const run = await runCli(['run', fixture('shard-job.ts'), '--quiet'], { env: { ...env, DATABASE_URL: `${url}?schema=team_a` } });
  assert.equal(run.code, 0, run.stderr);
  const tables = await withPool(url, async (pool) => (await pool.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'team_a'")).rows);
  assert.ok(tables.some((row) => row.table_name === 'checkpoints'));
  assert.equal(await withPool(url, async (pool) => Number((await pool.query('SELECT count(*) AS c FROM out')).rows[0]?.c)), 60);
  const status = await runCli(['status', '--store', `${url}?schema=team_a`, '--json']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /"shards"/);
  const again = await runCli(['run', fixture('shard-job.ts'), '--store', `${url}?schema=team_a`]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already complete/);
});

test('a schema written by a newer checkpointed → exit 4, naming both versions', async () => {
  const url = await database();
  const store = `${url}?schema=newer`;
  assert.equal((await runCli(['status', '--store', store])).code, 0);
  await withPool(url, (pool) => pool.query('INSERT INTO newer.ckpt_schema (version) VALUES (99)'));
  const result = await runCli(['run', fixture('shard-job.ts'), '--store', store], { env });
  assert.equal(result.code, 4, result.stderr);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /schema version 99, newer than version \d+ .*unsafe to continue/);
});

test('a bad schema name → exit 2', async () => {
  const result = await runCli(['status', '--store', 'postgres://u@127.0.0.1/db?schema=no-dashes']);
  assert.equal(result.code, 2, result.stderr);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /schema name "no-dashes" is not valid/);
});

test('nothing listening at the URL → exit 1, one line saying what to check', async () => {
  const result = await runCli(['status', '--store', `postgres://u:secret@127.0.0.1:${await freePort()}/db`]);
  assert.equal(result.code, 1, result.stderr);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /unreachable: .*ECONNREFUSED.*check that the server is up/);
  assert.doesNotMatch(result.stderr, /secret/);
});
