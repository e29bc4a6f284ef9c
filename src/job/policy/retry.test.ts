import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay, retryPolicy } from './retry.ts';

test('backoff doubles per attempt, is capped, and jitters within [half, full]', () => {
  const policy = retryPolicy({ attempts: 5, backoffMs: 100, maxBackoffMs: 300 }, 'job');
  assert.equal(
    backoffDelay(policy, 1, () => 0),
    50,
  );
  assert.equal(
    backoffDelay(policy, 1, () => 1),
    100,
  );
  assert.equal(
    backoffDelay(policy, 2, () => 1),
    200,
  );
  assert.equal(
    backoffDelay(policy, 3, () => 1),
    300,
    'capped at maxBackoffMs',
  );
  assert.equal(
    backoffDelay(policy, 9, () => 0),
    150,
  );
  assert.throws(() => retryPolicy({ attempts: 0 }, 'job'), /attempts must be a whole number/);
  assert.deepEqual(retryPolicy(undefined, 'job'), { attempts: 1, backoffMs: 100, maxBackoffMs: 10_000 });
});
