// Issue 21, must-show 3: a fleet rate limit. Four workers of one job on one PostgreSQL store call
// a fake directory (an HTTP server here, logging each call's arrival) under `rateLimits:
// { directory: { perSecond: 50 } }`: the directory's log shows no 1-second window with more than
// 55 calls, and the job's throughput is at least 90 % of 50 calls a second. The tokens come from
// one bucket in the store, shared by the workers. The limiter's own bound (no second's grants
// above the rate, on the store's clock) is proven as logic in test/rate-bucket.test.ts; here the
// call starts (each worker's clock, after its grant) are printed beside the arrivals.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { fixture, runCli, spawnCli } from './helpers/cli.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const RECORDS = 800;
const RATE = 50;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/** The most calls in any window of `ms` that starts at a call. */
function busiestWindow(times: number[], ms: number): number {
  let most = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while ((times[end] as number) - (times[start] as number) >= ms) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

test(`PostgreSQL: 4 workers under a fleet rate limit of ${RATE}/s: no 1-second window above 55 calls, throughput ≥ 90 % of the rate`, {
  timeout: 180_000,
}, async (t) => {
  const arrivals: number[] = [];
  const starts: number[] = [];
  const keys = new Set<string>();
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://x');
    if (url.pathname === '/call') {
      arrivals.push(performance.now());
      starts.push(Number(url.searchParams.get('start')));
      keys.add(url.searchParams.get('key') ?? '');
    }
    response.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  const database = await freshDatabase();
  cleanups.push(database.drop);
  const env = { RATE_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
  const args = ['run', fixture('rate-limited.ts'), '--store', database.url, '--param', `records=${RECORDS}`, '--wait', '--quiet'];
  const results = await Promise.all(Array.from({ length: 4 }, () => spawnCli(args, { env }).done));
  for (const result of results) assert.equal(result.code, 0, result.stderr);
  assert.equal(keys.size, RECORDS, 'every record called the directory');
  assert.equal(arrivals.length, RECORDS, 'once');
  arrivals.sort((a, b) => a - b);
  const busiest = busiestWindow(arrivals, 1000);
  const seconds = ((arrivals.at(-1) as number) - (arrivals[0] as number)) / 1000;
  const throughput = (RECORDS - 1) / seconds;
  const perSecond = new Map<number, number>();
  for (const at of arrivals)
    perSecond.set(Math.floor((at - (arrivals[0] as number)) / 1000), (perSecond.get(Math.floor((at - (arrivals[0] as number)) / 1000)) ?? 0) + 1);
  t.diagnostic(`calls per second: ${[...perSecond.values()].join(' ')}`);
  starts.sort((a, b) => a - b);
  const busiestStart = busiestWindow(starts, 1000);
  t.diagnostic(
    `busiest 1-second window: ${busiest} calls at the directory, ${busiestStart} call starts; ${RECORDS} calls in ${seconds.toFixed(2)} s = ${throughput.toFixed(1)}/s`,
  );
  assert.ok(busiest <= 55, `a 1-second window held ${busiest} calls`);
  assert.ok(throughput >= 0.9 * RATE, `throughput ${throughput.toFixed(1)}/s is below 90 % of ${RATE}/s`);
  const statuses = await runCli(['runs', 'rate-limited', '--store', database.url, '--param', `records=${RECORDS}`, '--json']);
  const pids = new Set((JSON.parse(statuses.stdout) as { worker: string }[]).map((run) => run.worker));
  assert.ok(pids.size >= 2, `the work was shared by ${pids.size} workers`);
  await withPool(database.url, async (pool) => {
    const bucket = (await pool.query('SELECT name FROM checkpointed.rate_buckets')).rows;
    assert.deepEqual(
      bucket.map((row) => String(row.name)),
      ['directory'],
      'one bucket in the store, shared',
    );
  });
});
