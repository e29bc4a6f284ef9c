// The dashboard's first page load with 10,000 shards on PostgreSQL, in Debian's Chromium.
//   node bench/dashboard-load.ts        writes bench/dashboard-results.md
//   DATABASE_URL   the PostgreSQL server to use (default postgres://postgres@127.0.0.1:5432/postgres);
//                  a database ckpt_bench_dashboard is created on it (and dropped at the end)
//   BENCH_SHARDS   shards (default 10,000)
//   BENCH_KEEP=1   keep the database afterwards, and reuse a kept one instead of filling it again
// The store is filled by real runs (4 workers in this process, one claim → checkpoint → complete
// per shard, with their events), 60 % of the shards completed and the rest pending. Each load is
// measured cold: a fresh dashboard server (so nothing is cached), a fresh browser page, from
// navigation to the instance's shards, runs and events rendered.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { startDashboard } from '../src/cli/dashboard/server.ts';
import { defineJob, range, runJob } from '../src/index.ts';
import { PostgresStore } from '../src/postgres.ts';
import { createPgPool } from '../src/store/postgres/postgres-driver.ts';
import { chromiumPath, launchChromium } from '../test/helpers/chromium.ts';

const shards = Number(process.env.BENCH_SHARDS ?? 10_000);
const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const database = 'ckpt_bench_dashboard';
const loads = 7;
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

const keep = process.env.BENCH_KEEP === '1';
const admin = await createPgPool({ connectionString: adminUrl, max: 1 });
const reuse = keep && (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rows.length > 0;
if (!reuse) {
  await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin.query(`CREATE DATABASE ${database}`);
}
const url = new URL(adminUrl);
url.pathname = `/${database}`;

const job = defineJob<number>({
  name: 'backfill-tenants',
  params: (raw) => ({ day: raw.day ?? '2026-11-24' }),
  shards: () => Array.from({ length: shards }, (_, index) => `tenant-${String(index).padStart(5, '0')}`),
  source: () => range(0, 20),
  checkpoint: { every: 10 },
  process: () => undefined,
});

const store = new PostgresStore({ connectionString: url.toString() });
await store.migrate();
const target = Math.round(shards * 0.6);
let completed = target;
if (!reuse) {
  const fill = performance.now();
  const stop = new AbortController();
  completed = 0;
  await Promise.all(
    Array.from({ length: 4 }, (_, index) =>
      runJob(job, {
        store,
        worker: `bench-host:${1000 + index}`,
        signal: stop.signal,
        wait: true,
        onEvent: (event) => {
          if (event.type === 'shard:complete' && ++completed >= target) stop.abort();
        },
      }),
    ),
  );
  // Four shards held by live-looking workers (long leases, a heartbeat each), as during a run.
  const [instance] = await store.listInstances(job.name);
  for (let index = 0; index < 4 && instance !== undefined; index++) {
    const lease = await store.claim(instance, `bench-host:${2000 + index}`, 3_600_000);
    if (lease !== null) await store.heartbeat(lease, { processed: 7, markProcessed: 7 });
  }
  log(`filled: ${completed} of ${shards} shards completed in ${((performance.now() - fill) / 1000).toFixed(0)} s, 4 held`);
}
const stats = await createPgPool({ connectionString: url.toString(), max: 1 });
const rows: Record<string, number> = {};
for (const table of ['shards', 'runs', 'events', 'checkpoints']) {
  rows[table] = Number((await stats.query(`SELECT count(*)::int AS n FROM checkpointed.${table}`)).rows[0]?.n);
}
await stats.end();
log(`rows: ${JSON.stringify(rows)}`);

// Debian's wrapper script prints a shell warning on stderr here; the version is on stdout.
const chromiumVersion = execFileSync(chromiumPath, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
const chromium = await launchChromium('ckpt-bench-chromium-');
const browser = chromium.context;
const cold: number[] = [];
const warm: number[] = [];
const api: number[] = [];
try {
  for (let round = 0; round < loads; round++) {
    const server = await startDashboard({ store, port: 0, host: '127.0.0.1', token: undefined });
    const page = await browser.newPage();
    let started = performance.now();
    await page.goto(`${server.url}/`);
    await page.locator('body[data-ready="1"]').waitFor({ timeout: 30_000 });
    cold.push(performance.now() - started);
    // The same page again, with the server's cache warm (what a second browser tab costs).
    started = performance.now();
    await page.reload();
    await page.locator('body[data-ready="1"]').waitFor({ timeout: 30_000 });
    warm.push(performance.now() - started);
    await page.close();
    // The instance's JSON alone from a cold server: the store's share of the load.
    await server.close();
    const fresh = await startDashboard({ store, port: 0, host: '127.0.0.1', token: undefined });
    started = performance.now();
    await Promise.all([
      fetch(`${fresh.url}/api/overview`).then((response) => response.text()),
      fetch(`${fresh.url}/api/instances/default`).then((response) => response.text()),
    ]);
    api.push(performance.now() - started);
    await fresh.close();
    log(`load ${round + 1}: cold ${cold.at(-1)?.toFixed(0)} ms, warm ${warm.at(-1)?.toFixed(0)} ms, JSON from a cold server ${api.at(-1)?.toFixed(0)} ms`);
  }
} finally {
  await chromium.close();
  await store.close();
  if (!keep) await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin.end();
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const cell = (values: number[]) => `${median(values).toFixed(0)} ms (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})`;
const report = `# Dashboard first load

\`node bench/dashboard-load.ts\`, ${new Date().toISOString().slice(0, 16)}Z, ${cpus().length} cores (load average ${loadavg()[0]?.toFixed(1)} at the end),
${chromiumVersion} headless, PostgreSQL at ${url.host}.

Store: one instance of ${shards.toLocaleString('en-US')} shards, ${completed.toLocaleString('en-US')} completed by real runs (4 workers), 4 held by live leases, the rest pending;
${Object.entries(rows)
  .map(([table, n]) => `${n.toLocaleString('en-US')} ${table}`)
  .join(', ')}.

| measure (${loads} loads) | median (min–max) | target |
| --- | --- | --- |
| first load: navigation → shards, runs and events rendered, fresh server (nothing cached) | ${cell(cold)} | < 1 s |
| reload with the server's cache warm (another tab) | ${cell(warm)} | |
| the page's two JSON requests from a fresh server (the store's share) | ${cell(api)} | |

The server reads the instance's shards, runs and dead letters and its event log (once; afterwards
only new events) and sends one page of 50 shards; the browser never holds the 10,000.
`;
writeFileSync(join(import.meta.dirname, 'dashboard-results.md'), report);
log(`wrote bench/dashboard-results.md: first load ${cell(cold)}`);
