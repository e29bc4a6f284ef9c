// The rate limiter's bound, as pure logic: takes at random moments from a bucket refilled at
// `refillRate(perSecond, burst)` never put more than `perSecond` grants in a one-second window,
// while a bucket refilled at `perSecond` itself does (so the test can fail).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refillRate } from '../src/job/guard/rate-limiter.ts';
import { takeFromBucket } from '../src/store/plan-rows.ts';

/** Takers at random moments (about four times the rate) for 20 s; the grant times, in ms. */
function simulate(perSecond: number, burst: number, refill: number, seed: number): number[] {
  let state = seed;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  let bucket: { tokens: number; updatedAt: number } | undefined;
  const grants: number[] = [];
  let now = 0;
  while (now < 20_000) {
    now = Math.round((now + random() * (500 / perSecond)) * 1000) / 1000;
    const next = takeFromBucket(bucket, now, refill, burst, 1 + Math.floor(random() * burst));
    bucket = next;
    for (let i = 0; i < next.granted; i++) grants.push(now);
  }
  return grants;
}

function busiest(times: number[]): number {
  let most = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while ((times[end] as number) - (times[start] as number) >= 1000) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

for (const [perSecond, burst] of [
  [50, 3],
  [50, 1],
  [10, 10],
  [1, 1],
  [1000, 50],
] as const) {
  test(`a bucket of ${burst} refilled at refillRate(${perSecond}, ${burst}) puts at most ${perSecond} grants in any second, and nearly that many`, () => {
    const refill = refillRate(perSecond, burst);
    for (let seed = 1; seed <= 20; seed++) {
      const grants = simulate(perSecond, burst, refill, seed);
      assert.ok(busiest(grants) <= perSecond, `seed ${seed}: ${busiest(grants)} grants in one second`);
      assert.ok(grants.length / 20 >= 0.8 * refill, `seed ${seed}: ${grants.length / 20}/s`);
    }
  });
}

test('a bucket of 3 refilled at the plain rate of 50 lets a second see more than 50 (the bound above is not free)', () => {
  let most = 0;
  for (let seed = 1; seed <= 20; seed++) most = Math.max(most, busiest(simulate(50, 3, 50, seed)));
  assert.ok(most > 50, `busiest second held ${most}`);
});

test('a burst above perSecond is refused by defineJob, in one line', async () => {
  const { defineJob, range } = await import('../src/index.ts');
  const job = (burst: number) => () =>
    defineJob({ name: 'r', source: () => range(0, 1), rateLimits: { api: { perSecond: 5, burst } }, process: () => undefined });
  assert.throws(job(6), /rateLimits\.api\.burst must be at most perSecond \(5\)/);
  assert.doesNotThrow(job(5));
});

test("an effect whose target is a name Object.prototype holds ('toString', 'constructor') is limited only by a rate the job declares for it", {
  timeout: 60_000,
}, async () => {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { fixture, runCli, tempDir } = await import('./helpers/cli.ts');
  const dir = tempDir('ckpt-rate-names-');
  const calls = join(dir, 'calls.txt');
  const run = await runCli(['run', fixture('rate-target-names.ts'), '--store', `sqlite:${join(dir, 'store.db')}`, '--quiet'], {
    env: { CKPT_TEST_CALLS: calls },
  });
  assert.equal(run.code, 0, run.stderr);
  const lines = readFileSync(calls, 'utf8').trim().split('\n');
  const startsOf = (target: string) => lines.filter((line) => line.startsWith(`${target} `)).map((line) => Number(line.split(' ')[1]));
  assert.equal(startsOf('toString').length, 4, lines.join('\n'));
  const limited = startsOf('constructor').sort((a, b) => a - b);
  assert.equal(limited.length, 4, lines.join('\n'));
  // 2 a second with a burst of 1: the four calls span at least a second and a half.
  assert.ok((limited[3] as number) - (limited[0] as number) >= 1400, `constructor's calls at ${limited.join(', ')}`);
});

test('a rate limit target over 255 characters is refused by defineJob, on every store (MySQL keeps a bucket name in 255)', async () => {
  const { defineJob, range } = await import('../src/index.ts');
  const job = (target: string) => () =>
    defineJob({ name: 'r', source: () => range(0, 1), rateLimits: { [target]: { perSecond: 5 } }, process: () => undefined });
  assert.throws(job('t'.repeat(256)), /defineJob\(r\): the rate limit target "t{40}…" is 256 characters long; at most 255/);
  assert.doesNotThrow(job('t'.repeat(255)));
});
