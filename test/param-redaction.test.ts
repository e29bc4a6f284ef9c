// Params whose names say they hold a secret (apiToken, password, signingKey, …) are shown as
// [redacted] everywhere a param is shown, as the dashboard always did: the run's own output,
// status, runs, events, their --json, audit exports, and the store's files; other params are
// shown as given. A job need not list them in `redact: [...]` for that.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const SECRETS = {
  apiToken: 'tok_PARAM_e1d7a93c',
  password: 'pw_PARAM_51b0c2f7',
  signingKey: 'skey_PARAM_8a2f4e61',
  db_passwd: 'pwd_PARAM_77c1d0aa',
};
const PLAIN = { tenant: 'acme-tenant-42', keyId: 'kid-PLAIN-3b9e', sortKey: 'sortkey-PLAIN-91', key: 'disable:PLAIN-alice' };

test('secret-named params are [redacted] in every output and never stored in clear', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const params = Object.entries({ ...SECRETS, ...PLAIN }).flatMap(([name, value]) => ['--param', `${name}=${value}`]);
  const outputs: string[] = [];
  for (const mode of [[], ['--json']]) {
    const run = await runCli(['run', fixture('params-job.ts'), ...store, ...params, '--rerun', ...mode]);
    assert.equal(run.code, 0, run.stderr);
    outputs.push(run.stdout, run.stderr);
  }
  const exportFile = join(dir, 'evidence.csv');
  for (const args of [
    ['status'],
    ['status', '--json'],
    ['runs', 'params-job'],
    ['runs', 'params-job', '--json'],
    ['events', 'params-job'],
    ['events', 'params-job', '--json'],
    // The value typed in full still picks the instance.
    ['runs', 'params-job', '--param', `apiToken=${SECRETS.apiToken}`],
    ['audit', 'params-job', '--verify'],
    ['audit', 'params-job', '--export', 'ndjson'],
    ['audit', 'params-job', '--export', 'csv', '--out', exportFile],
  ]) {
    const result = await runCli([...args, ...store]);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    outputs.push(result.stdout, result.stderr);
  }
  outputs.push(readFileSync(exportFile, 'utf8'));
  const shown = outputs.join('\n');
  for (const name of Object.keys(SECRETS)) assert.match(shown, new RegExp(`${name}\\\\?":\\\\?"\\[redacted\\]`), `${name} is shown redacted`);
  for (const value of Object.values(PLAIN)) assert.ok(shown.includes(value), `${value} (not a secret) is shown`);
  const stored = readdirSync(dir)
    .filter((name) => name.startsWith('store.db'))
    .map((name) => readFileSync(join(dir, name)).toString('latin1'))
    .join('\n');
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!shown.includes(value), `${name}'s value was shown`);
    assert.ok(!stored.includes(value), `${name}'s value was stored`);
  }
});

test('a param named __proto__ is shown and stored as a param, not lost as a prototype', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const run = await runCli(['run', fixture('params-job.ts'), ...store, '--param', '__proto__=polluted', '--param', 'apiToken=tok_x9', '--quiet']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout + run.stderr, /"__proto__":"polluted"/);
  const status = await runCli(['status', ...store, '--json']);
  const [instance] = JSON.parse(status.stdout) as { instance: { params: { [key: string]: unknown } } }[];
  assert.deepEqual(Object.entries(instance?.instance.params ?? {}), [
    ['__proto__', 'polluted'],
    ['apiToken', '[redacted]'],
  ]);
});

test('what a job logs is redacted like its params: secret-named fields and URL passwords', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const run = await runCli(['run', fixture('log-secrets-job.ts'), ...store, '--param', 'apiToken=tok_LOGGED_1b2c', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const shown = run.stdout + run.stderr;
  assert.match(shown, /"type":"log".*record 1: calling postgres:\/\/svc:\[redacted\]@db\.internal\/app for acme/);
  assert.match(shown, /"apiToken":"\[redacted\]"/);
  assert.match(shown, /"tenant":"acme"/);
  for (const needle of ['tok_LOGGED_1b2c', 'pw_LOGGED_4d1f', 'hdr_LOGGED_77aa']) assert.ok(!shown.includes(needle), `${needle} was logged in clear`);
});

test('a plan shows secret-named params [redacted], one stored in clear before included', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const storePath = join(dir, 'store.db');
  const store = ['--store', `sqlite:${storePath}`];
  const plan = await runCli(['plan', fixture('planned-once.ts'), ...store, '--param', 'apiToken=tok_PLAN_5e6f', '--json'], {
    env: { CKPT_TEST_LOG: join(dir, 'calls.log') },
  });
  assert.equal(plan.code, 0, plan.stderr);
  const { id } = JSON.parse(plan.stdout) as { id: string };
  assert.ok(!plan.stdout.includes('tok_PLAN_5e6f'));
  // As a plan stored before params were redacted at store time.
  const db = new DatabaseSync(storePath);
  const row = db.prepare('SELECT body FROM plans WHERE id = ?').get(id) as { body: string };
  const body = JSON.parse(row.body) as { params: { [key: string]: string } };
  body.params.apiToken = 'tok_PLAN_5e6f';
  db.prepare('UPDATE plans SET body = ? WHERE id = ?').run(JSON.stringify(body), id);
  db.close();
  for (const args of [['--json'], []]) {
    const shown = await runCli(['plan', '--show', id, ...store, ...args]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.ok(!shown.stdout.includes('tok_PLAN_5e6f'), `plan --show ${args.join(' ')} printed the token`);
    assert.match(shown.stdout, /apiToken\\?"\s*:\s*\\?"\[redacted\]/);
  }
});

test("ckpt dlq shows a dead letter's secret-named fields [redacted], as the dashboard does", { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const run = await runCli(['run', fixture('dlq-secrets-job.ts'), ...store, '--quiet']);
  assert.equal(run.code, 0, run.stderr);
  for (const args of [[], ['--json']]) {
    const dlq = await runCli(['dlq', 'dlq-secrets-job', ...store, ...args]);
    assert.equal(dlq.code, 0, dlq.stderr);
    assert.match(dlq.stdout, /bob/);
    assert.match(dlq.stdout, /password\\?"\s*:\s*\\?"\[redacted\]/);
    assert.ok(!dlq.stdout.includes('pw_DLQ_bob_9e07'), `ckpt dlq ${args.join(' ')} printed the password`);
  }
});

test('a hold tells the approve command with secret-named params as …, and that command releases it', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const run = ['run', fixture('held-secret-job.ts'), ...store, '--param', 'apiToken=tok_HOLD_a1b2', '--param', 'tenant=acme'];
  const held = await runCli([...run, '--quiet']);
  assert.equal(held.code, 7, held.stderr);
  const outputs = [held.stdout, held.stderr];
  for (const args of [['status'], ['status', '--json']]) {
    const result = await runCli([...args, ...store]);
    outputs.push(result.stdout, result.stderr);
  }
  const shown = outputs.join('\n');
  const command = /ckpt approve held-secret-job [^\n,]*--raise disable=\+N/.exec(shown)?.[0];
  assert.ok(command !== undefined, `the hold names its command: ${shown}`);
  assert.match(command, /--param 'apiToken=…' --param tenant=acme/);
  const stored = readdirSync(dir)
    .map((name) => readFileSync(join(dir, name)).toString('latin1'))
    .join('\n');
  for (const text of [shown, stored]) assert.ok(!text.includes('tok_HOLD_a1b2'), 'the token was shown or stored in clear');
  // The command as told (with N filled in) picks the instance and releases it.
  const approve = await runCli([
    'approve',
    'held-secret-job',
    '--param',
    'apiToken=…',
    '--param',
    'tenant=acme',
    '--raise',
    'disable=+5',
    '--by',
    'ana',
    '--reason',
    'ticket 1',
    ...store,
  ]);
  assert.equal(approve.code, 0, approve.stderr);
  const resumed = await runCli([...run, '--quiet']);
  assert.equal(resumed.code, 0, resumed.stderr);
});
