import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDashboard } from '../src/cli/dashboard/server.ts';
import { loadJob } from '../src/cli/load-job.ts';
import { runJob } from '../src/job/runner.ts';
import { serveMetrics } from '../src/metrics/metrics-server.ts';
import { RunMetrics } from '../src/metrics/run-metrics.ts';
import { openStore } from '../src/store/open-store.ts';
import { fixture, isOneLineError, repoRoot, runCli, spawnCli, tempDir } from './helpers/cli.ts';

const dir = tempDir('ckpt-metrics-');
after(() => rmSync(dir, { recursive: true, force: true }));

/** 2 shards of 300 records, 5 ms each; every 40th record goes to dead letters after 2 attempts. */
const jobEnv = { CKPT_TEST_SHARDS: '2', CKPT_TEST_RECORDS: '300', CKPT_TEST_DELAY_MS: '5', CKPT_TEST_BAD_EVERY: '40' };

/** Samples of a Prometheus text page: `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) samples.set(match[1] as string, Number(match[2]));
  }
  return samples;
}

function sample(samples: Map<string, number>, name: string, labels: string): number {
  const value = samples.get(`${name}{${labels}}`);
  assert.notEqual(value, undefined, `${name}{${labels}} is listed`);
  return value as number;
}

it('ckpt run --metrics-port serves every worker metric with job/instance/shard labels while it runs', { timeout: 60_000 }, async () => {
  const store = `sqlite:${join(dir, 'live.db')}`;
  const run = spawnCli(['run', fixture('dashboard-job.ts'), '--store', store, '--metrics-port', '0', '--json'], { env: jobEnv });
  const url = await new Promise<string>((resolve, reject) => {
    run.child.stderr?.on('data', (chunk: Buffer) => {
      const found = /metrics on (http:\S+)/.exec(String(chunk));
      if (found) resolve(found[1] as string);
    });
    run.child.on('exit', () => reject(new Error('the run ended before it served metrics')));
  });
  // Scrape until a checkpoint has been counted (the first few are only ~125 ms apart).
  let samples = new Map<string, number>();
  for (let tries = 0; tries < 100; tries++) {
    samples = parseMetrics(await (await fetch(url)).text());
    if ((samples.get('ckpt_checkpoints_total{job="dashboard-demo",instance="1"}') ?? 0) > 0 && samples.size > 0) break;
    await sleep(50);
  }
  const base = 'job="dashboard-demo",instance="1"';
  for (const name of [
    'ckpt_records_processed_total',
    'ckpt_checkpoints_total',
    'ckpt_checkpoint_duration_seconds_count',
    'ckpt_checkpoint_duration_seconds_sum',
    'ckpt_rework_records_total',
    'ckpt_dead_letters_total',
    'ckpt_record_retries_total',
    'ckpt_lease_losses_total',
    'ckpt_crashed_runs_found_total',
  ]) {
    sample(samples, name, base);
  }
  sample(samples, 'ckpt_effects_in_doubt_total', `${base},resolution="run-again"`);
  sample(samples, 'ckpt_checkpoint_duration_seconds_bucket', `le="0.1",${base}`);
  const shard = [...samples.keys()].find((key) => key.startsWith('ckpt_records_in_flight{'));
  assert.ok(shard !== undefined && /shard="tenant-[ab]"/.test(shard), `records in flight are labelled with the shard held now (${shard})`);
  for (const name of [
    'ckpt_shard_processed_records',
    'ckpt_records_per_second',
    'ckpt_checkpoint_interval_records',
    'ckpt_last_checkpoint_timestamp_seconds',
  ]) {
    assert.ok(
      [...samples.keys()].some((key) => key.startsWith(`${name}{${base},shard="tenant-`)),
      `${name} is listed per shard`,
    );
  }
  const first = sample(samples, 'ckpt_records_processed_total', base);
  await sleep(400);
  const later = parseMetrics(await (await fetch(url)).text());
  assert.ok(sample(later, 'ckpt_records_processed_total', base) > first, 'records processed advance between two scrapes');
  assert.equal((await run.done).code, 0);
  assert.equal((await fetch(`${url.replace(/\/metrics$/, '')}/other`).catch(() => undefined))?.status, undefined, 'the metrics server closed with the run');
});

it("a worker's metrics and the dashboard's /metrics agree with the run's summary after a SIGKILL and a resume", { timeout: 60_000 }, async () => {
  const url = `sqlite:${join(dir, 'crash.db')}`;
  // Run 1, a child: a progress mark every 40 ms, killed mid-chunk after its second checkpoint.
  const first = spawnCli(['run', fixture('dashboard-job.ts'), '--store', url, '--json', '--every', '100', '--heartbeat-ms', '40'], { env: jobEnv });
  let checkpoints = 0;
  createInterface({ input: first.child.stdout! }).on('line', (line) => {
    if ((JSON.parse(line) as { type: string }).type === 'checkpoint' && ++checkpoints === 2) setTimeout(() => first.child.kill('SIGKILL'), 250);
  });
  assert.equal((await first.done).signal, 'SIGKILL');

  // Run 2, in this process: resumes, reaps the crashed run, and feeds its events to the metrics.
  Object.assign(process.env, jobEnv);
  const job = await loadJob(fixture('dashboard-job.ts'));
  const store = await openStore(url);
  const metrics = new RunMetrics();
  const server = await serveMetrics(metrics.registry, 0, '127.0.0.1');
  let summary: Awaited<ReturnType<typeof runJob>>;
  try {
    summary = await runJob(job, { store, checkpoint: { every: 100 }, onEvent: metrics.onEvent });
  } finally {
    await store.close();
  }
  const samples = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
  await server.close();
  const base = `job="dashboard-demo",instance="${summary.instanceId}"`;
  assert.equal(summary.outcome, 'completed');
  assert.ok(summary.rework > 0, 'the kill fell after a progress mark past the checkpoint: there was work to redo');
  assert.ok(summary.deadLetters > 0, 'some records went to dead letters in this run');
  assert.equal(sample(samples, 'ckpt_records_processed_total', base), summary.records);
  assert.equal(sample(samples, 'ckpt_checkpoints_total', base), summary.checkpoints);
  assert.equal(sample(samples, 'ckpt_checkpoint_duration_seconds_count', base), summary.checkpoints);
  assert.ok(Math.abs(sample(samples, 'ckpt_checkpoint_duration_seconds_sum', base) - summary.checkpointMs / 1000) < 1e-6, 'checkpoint seconds add up');
  assert.equal(sample(samples, 'ckpt_rework_records_total', base), summary.rework);
  assert.equal(sample(samples, 'ckpt_dead_letters_total', base), summary.deadLetters);
  // Each bad record fails both of its attempts: one retry per dead letter.
  assert.equal(sample(samples, 'ckpt_record_retries_total', base), summary.deadLetters);
  assert.equal(sample(samples, 'ckpt_crashed_runs_found_total', base), 1);
  assert.equal(sample(samples, 'ckpt_runs_total', `${base},outcome="completed"`), summary.shards.filter((shard) => shard.outcome === 'completed').length);
  assert.ok(![...samples.keys()].some((key) => key.startsWith('ckpt_records_in_flight{')), 'no shard is held any more: its gauges are gone');

  // The dashboard's /metrics reads the same story back from the store.
  const reopened = await openStore(url);
  const dashboard = await startDashboard({ store: reopened, port: 0, host: '127.0.0.1', token: undefined });
  try {
    const stored = parseMetrics(await (await fetch(`${dashboard.url}/metrics`)).text());
    assert.equal(sample(stored, 'ckpt_instance_completed', base), 1);
    assert.equal(sample(stored, 'ckpt_instance_records_checkpointed', base), 600);
    assert.equal(sample(stored, 'ckpt_instance_runs', `${base},outcome="crashed"`), 1);
    assert.equal(sample(stored, 'ckpt_instance_rework_records', base), summary.rework);
    assert.equal(sample(stored, 'ckpt_instance_dead_letters', base), 2 * Math.floor(300 / 40), 'every bad record of both shards is a dead letter, once');
    assert.equal(sample(stored, 'ckpt_instance_shards', `${base},status="completed"`), 2);
  } finally {
    await dashboard.close();
    await reopened.close();
  }
});

it("a worker's /metrics is guarded as the dashboard is: loopback Host only without a token, the token on every request with one", {
  timeout: 60_000,
}, async () => {
  // Off loopback without a token: refused before anything runs, one line, exit 2.
  const open = await runCli([
    'run',
    fixture('dashboard-job.ts'),
    '--store',
    `sqlite:${join(dir, 'guard.db')}`,
    '--metrics-port',
    '0',
    '--metrics-host',
    '0.0.0.0',
  ]);
  assert.equal(open.code, 2, open.stderr);
  assert.ok(isOneLineError(open.stderr), open.stderr);
  assert.match(open.stderr, /--metrics-token/);
  // A host or a token without a port serves nothing: refused, not run without the metrics asked for.
  for (const flags of [
    ['--metrics-host', '0.0.0.0', '--metrics-token', 'metrics-token-0123456789'],
    ['--metrics-token', 'metrics-token-0123456789'],
  ]) {
    const portless = await runCli(['run', fixture('dashboard-job.ts'), '--store', `sqlite:${join(dir, 'portless.db')}`, ...flags]);
    assert.equal(portless.code, 2, `${flags.join(' ')}: ${portless.stdout}${portless.stderr}`);
    assert.ok(isOneLineError(portless.stderr), portless.stderr);
    assert.match(portless.stderr, /^ckpt: --metrics-(host|token) needs --metrics-port N: without a port no metrics are served/);
  }

  const registry = new RunMetrics().registry;
  const loopback = await serveMetrics(registry, 0, '127.0.0.1');
  try {
    assert.equal((await get(`${loopback.url}/metrics`)).status, 200);
    assert.equal((await get(`${loopback.url}/metrics`, { host: 'attacker.example' })).status, 403, 'DNS rebinding: a foreign Host');
  } finally {
    await loopback.close();
  }
  const token = 'metrics-token-0123456789';
  const guarded = await serveMetrics(registry, 0, '127.0.0.1', token);
  try {
    assert.equal((await get(`${guarded.url}/metrics`)).status, 401);
    assert.equal((await get(`${guarded.url}/metrics`, { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
    assert.equal((await get(`${guarded.url}/metrics`, { authorization: `Bearer ${token}`, host: 'metrics.internal:9464' })).status, 200);
  } finally {
    await guarded.close();
  }
  // And from the CLI: the flag (or $CKPT_METRICS_TOKEN) makes the worker demand it.
  const run = spawnCli(['run', fixture('dashboard-job.ts'), '--store', `sqlite:${join(dir, 'guard.db')}`, '--metrics-port', '0', '--json'], {
    env: { ...jobEnv, CKPT_METRICS_TOKEN: token },
  });
  const url = await new Promise<string>((resolve, reject) => {
    run.child.stderr?.on('data', (chunk: Buffer) => {
      const found = /metrics on (http:\S+)/.exec(String(chunk));
      if (found) resolve(found[1] as string);
    });
    run.child.on('exit', () => reject(new Error('the run ended before it served metrics')));
  });
  try {
    assert.equal((await get(url)).status, 401);
    assert.equal((await get(url, { authorization: `Bearer ${token}` })).status, 200);
  } finally {
    run.child.kill('SIGKILL');
    await run.done;
  }
});

/** A GET with chosen headers (fetch would not let a test set Host). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

it("import 'checkpointed' loads neither prom-client nor the dashboard (only ckpt's metrics and dashboard paths do)", () => {
  const script = `import { registerHooks } from 'node:module';
const seen = [];
registerHooks({ resolve(specifier, context, next) { seen.push(specifier); return next(specifier, context); } });
await import('checkpointed');
console.log(JSON.stringify(seen.filter((specifier) => /prom-client|playwright|dashboard|metrics/.test(specifier))));`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(result.stdout.trim(), '[]', result.stderr);
});
