import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { isSecret, lazySecretKey, REDACTED, sealSecrets, secret, unsealSecrets } from './secret.ts';

test('a secret prints as [redacted] in strings, JSON and inspect; reveal() gives it', () => {
  const token = secret('s3cr3t');
  assert.equal(`${token}`, REDACTED);
  assert.equal(JSON.stringify({ token }), '{"token":"[redacted]"}');
  assert.ok(!inspect({ token }).includes('s3cr3t'));
  assert.equal(token.reveal(), 's3cr3t');
});

test('sealed secrets round-trip with the key and are unreadable without it', () => {
  const key = randomBytes(32);
  const sealed = sealSecrets({ id: 'k1', value: secret('s3cr3t'), list: [secret(42)] }, key);
  assert.ok(!JSON.stringify(sealed).includes('s3cr3t'));
  const opened = unsealSecrets(sealed, key) as { id: string; value: unknown; list: unknown[] };
  assert.equal(opened.id, 'k1');
  assert.ok(isSecret(opened.value) && opened.value.reveal() === 's3cr3t');
  assert.ok(isSecret(opened.list[0]) && opened.list[0].reveal() === 42);
  assert.throws(() => unsealSecrets(sealed, randomBytes(32)), /cannot be decrypted/);
});

test('with no lasting key (a server store without CKPT_SECRET_KEY), a secret another process sealed is said lost, and how to avoid it', () => {
  // Another process's key: without CKPT_SECRET_KEY and with no key file, each process has its own.
  const sealed = sealSecrets({ value: secret('issued') }, randomBytes(32));
  const ours = lazySecretKey({}, undefined);
  assert.throws(() => unsealSecrets(sealed, ours), /keeps no secret key .*that secret is lost: set CKPT_SECRET_KEY for every run/);
  assert.throws(() => unsealSecrets(sealed, randomBytes(32)), /run with the same CKPT_SECRET_KEY \(or key file\) as that run/);
});
