import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { isSecret, REDACTED, sealSecrets, secret, unsealSecrets } from './secret.ts';

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
