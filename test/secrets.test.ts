// Secrets: a secret passed as a param and one returned by a step never appear in the store's
// files, its events, the CLI output or the logs.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const TOKEN = 'tok_PARAM_7f3c9a1e55d2';
const STEP_SECRET = 'sk_STEP_c0ffee4b1d';

test('secrets never appear in the store, its events, the CLI output or the logs', { timeout: 30_000 }, async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const env = { STEP_SECRET };
  const run = ['run', fixture('secret-job.ts'), ...store, '--param', `token=${TOKEN}`];
  const outputs: string[] = [];
  const crashed = await runCli(run, { env: { ...env, CRASH_AT: '3' } });
  assert.equal(crashed.signal, 'SIGKILL');
  outputs.push(crashed.stdout, crashed.stderr);
  const resumed = await runCli(run, { env });
  assert.equal(resumed.code, 0, resumed.stderr);
  outputs.push(resumed.stdout, resumed.stderr);
  // The log lines went through (so the search below is meaningful) and show the secrets redacted.
  assert.match(resumed.stdout, /"type":"log".*record 4: issued key-4 with \[redacted\] using \[redacted\]/);
  assert.match(resumed.stdout, /"type":"summary".*"params":\{[^}]*"token":"\[redacted\]"/);
  for (const args of [
    ['status'],
    ['status', '--json'],
    ['runs', 'secret-job'],
    ['events', 'secret-job'],
    ['events', 'secret-job', '--json'],
    ['dlq', 'secret-job'],
  ]) {
    const result = await runCli([...args, ...store]);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    outputs.push(result.stdout, result.stderr);
  }
  assert.match(outputs.join('\n'), /secret-job\s+\{[^}]*"token":"\[redacted\]"/, 'ckpt status shows the param redacted');

  const storeFiles = readdirSync(dir).filter((name) => name.startsWith('store.db') && !name.endsWith('.key'));
  assert.ok(storeFiles.includes('store.db.effects'), `the effect journal is searched too: ${storeFiles}`);
  const stored = storeFiles.map((name) => readFileSync(join(dir, name)).toString('latin1'));
  const everything = [...outputs, ...stored].join('\n');
  assert.ok(everything.includes('key-4'), 'the search covers the data around the secrets');
  for (const needle of [TOKEN, STEP_SECRET]) {
    assert.ok(!everything.includes(needle), `${needle} leaked`);
    assert.ok(!everything.includes(Buffer.from(needle).toString('base64')), `${needle} leaked as base64`);
  }
});
