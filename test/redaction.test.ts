// A password never reaches an error line, whatever it holds: a raw @ or / in a store URL's
// password is refused with the password hidden whole, not cut at its first @ or taken for a host;
// a URL's password or api_key quoted by a job's error is redacted before it is stored or printed.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { redactUrl } from '../src/store/open-store.ts';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

const PASSWORDS = ['hun@ter/22x', 'hunter/22x', 'hun@ter22x', 'a@b@hunter22x'];

test('a store URL password holding @ or / is hidden whole in every error line (exit 2, one line)', { timeout: 60_000 }, async () => {
  for (const password of PASSWORDS) {
    for (const url of [`postgres://bob:${password}@127.0.0.1:5999/db`, `mysql://bob:${password}@127.0.0.1:3999/db`]) {
      assert.equal(redactUrl(url), url.replace(password, '***'));
      const result = await runCli(['status', '--store', url]);
      assert.equal(result.code, 2, `${url}: ${result.stderr}`);
      assert.ok(isOneLineError(result.stderr), result.stderr);
      assert.match(result.stderr, /percent-encode/);
      for (const fragment of password.split(/[@/]/).filter((part) => part.length > 2)) {
        assert.ok(!result.stderr.includes(fragment), `${url}: "${fragment}" leaked: ${result.stderr}`);
      }
    }
  }
});

test('a URL password or api_key quoted by an error is redacted in dead letters, runs, events and output; httpPages with user:password@ fails at once', {
  timeout: 60_000,
}, async () => {
  const dir = tempDir('ckpt-redaction-');
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  const outputs: string[] = [];
  const run = await runCli(['run', fixture('leaky-error-job.ts'), ...store]);
  assert.equal(run.code, 0, run.stderr);
  outputs.push(run.stdout, run.stderr);
  const started = Date.now();
  const feed = await runCli(['run', fixture('leaky-error-job.ts'), ...store, '--param', 'feed=http://svc:pw-HUNTER2@127.0.0.1:9/items?api_key=KEY-99']);
  assert.notEqual(feed.code, 0);
  assert.ok(Date.now() - started < 10_000, 'not retried as transient');
  assert.match(feed.stdout + feed.stderr, /holds credentials/);
  outputs.push(feed.stdout, feed.stderr);
  for (const args of [
    ['runs', 'leaky-error-job'],
    ['events', 'leaky-error-job', '--json'],
    ['dlq', 'leaky-error-job', '--json'],
    ['status', '--json'],
  ]) {
    const result = await runCli([...args, ...store]);
    outputs.push(result.stdout, result.stderr);
  }
  const stored = readdirSync(dir)
    .filter((name) => name.startsWith('store.db'))
    .map((name) => readFileSync(join(dir, name)).toString('latin1'));
  const everything = [...outputs, ...stored].join('\n');
  assert.match(everything, /api\.example\.com\/v1\?api_key=\[redacted\]/, 'the error is stored, redacted');
  assert.ok(!everything.includes('pw-HUNTER2'), 'the password leaked');
  assert.ok(!everything.includes('KEY-99'), 'the api_key leaked');
});
