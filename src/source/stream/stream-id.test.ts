import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareStreamIds } from './stream-id.ts';

test('Redis entry IDs compare as numbers, milliseconds first, then sequence', () => {
  assert.equal(compareStreamIds('9-0', '10-0'), -1, 'string order would say 9-0 > 10-0');
  assert.equal(compareStreamIds('10-2', '10-10'), -1);
  assert.equal(compareStreamIds('1796614552089-0', '1796614552089-0'), 0);
  assert.equal(compareStreamIds('18446744073709551615-1', '18446744073709551615-0'), 1, 'beyond 2^53');
  assert.equal(compareStreamIds('5', '5-0'), 0);
  assert.throws(() => compareStreamIds('5-x', '1-0'), /not a Redis stream entry ID/);
});
