import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatCount } from './count.ts';

test('formatCount writes what toLocaleString(en-US) writes, rounded, for counts of every length', () => {
  const values = [
    0,
    1,
    12,
    123,
    999,
    1000,
    1234,
    12_345,
    123_456,
    999_999,
    1_000_000,
    1_234_567,
    12_345_678_901,
    2 ** 53 - 1,
    0.4,
    2.5,
    999.6,
    -1,
    -1234,
    -1_234_567,
  ];
  for (const n of values) assert.equal(formatCount(n), Math.round(n).toLocaleString('en-US'), String(n));
  assert.equal(formatCount(Number.NaN), 'NaN');
  assert.equal(formatCount(Number.POSITIVE_INFINITY), 'Infinity');
});
