import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isLoopback } from '../../metrics/http-access.ts';
import { redactJson, redactText } from './redact.ts';

it('redacts secret-named fields at any depth and passwords in URLs, and leaves the rest', () => {
  const shown = redactJson({
    user: 'ada',
    password: 'p1',
    nested: [{ apiKey: 'k', api_key: 'k', Authorization: 'Bearer x', refreshToken: 't', count: 3 }],
    note: 'see postgres://svc:hunter2@db/x and https://h/?token=abc&x=1',
    passwordHint: null,
  });
  assert.deepEqual(shown, {
    user: 'ada',
    password: '[redacted]',
    nested: [{ apiKey: '[redacted]', api_key: '[redacted]', Authorization: '[redacted]', refreshToken: '[redacted]', count: 3 }],
    note: 'see postgres://svc:[redacted]@db/x and https://h/?token=[redacted]&x=1',
    passwordHint: null,
  });
  assert.equal(redactText('no secret here: http://host/path'), 'no secret here: http://host/path');
});

it('knows loopback addresses from the rest', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) assert.ok(isLoopback(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1']) assert.ok(!isLoopback(host), host);
});
