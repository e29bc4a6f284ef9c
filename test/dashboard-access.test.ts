import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, isOneLineError, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const dir = tempDir('ckpt-dashboard-access-');
const store = `sqlite:${join(dir, 'ckpt.db')}`;
const token = 'test-token-0123456789';
after(() => rmSync(dir, { recursive: true, force: true }));

before(async () => {
  const run = await runCli(['run', fixture('dashboard-job.ts'), '--store', store, '--quiet', '--param', 'apiToken=hunter2-in-clear'], {
    env: { CKPT_TEST_SHARDS: '1', CKPT_TEST_RECORDS: '10', CKPT_TEST_DELAY_MS: '0' },
  });
  assert.equal(run.code, 0, run.stderr);
});

/** Start `ckpt dashboard` and resolve to its base URL once it listens. */
async function startDashboard(args: string[], env: NodeJS.ProcessEnv = {}) {
  const dashboard = spawnCli(['dashboard', '--store', store, '--port', '0', ...args], { env });
  const line = await waitForOutput(dashboard.child, (out) => /on http:\/\/\S+\//.test(out));
  const url = (/on (http:\/\/\S+?)\/ /.exec(line) as RegExpExecArray)[1] as string;
  const stop = () => {
    dashboard.child.kill('SIGTERM');
    return dashboard.done;
  };
  return { url, stop };
}

/** A GET with chosen headers (fetch would not let a test set Host). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

it('--host beyond loopback without a token exits 2 with one line', async () => {
  const result = await runCli(['dashboard', '--store', store, '--host', '0.0.0.0']);
  assert.equal(result.code, 2);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /--token/);
});

it('a blank, spaced or short token is refused with one line, exit 2 (dashboard and worker metrics alike)', async () => {
  for (const bad of [' '.repeat(12), `${'a'.repeat(8)}    `, 'short', 'has a space in it']) {
    const dashboard = await runCli(['dashboard', '--store', store, '--host', '0.0.0.0', '--token', bad]);
    assert.equal(dashboard.code, 2, `dashboard --token ${JSON.stringify(bad)}: ${dashboard.stderr}`);
    assert.ok(isOneLineError(dashboard.stderr), dashboard.stderr);
    assert.match(dashboard.stderr, /^ckpt: --token \(or \$CKPT_DASHBOARD_TOKEN\) must be at least 12 characters with no spaces/);
    const env = { CKPT_DASHBOARD_TOKEN: bad };
    assert.equal((await runCli(['dashboard', '--store', store], { env })).code, 2, `$CKPT_DASHBOARD_TOKEN=${JSON.stringify(bad)}`);
    const metrics = await runCli(['run', fixture('dashboard-job.ts'), '--store', store, '--metrics-port', '0', '--metrics-token', bad]);
    assert.equal(metrics.code, 2, `run --metrics-token ${JSON.stringify(bad)}: ${metrics.stderr}`);
    assert.ok(isOneLineError(metrics.stderr), metrics.stderr);
    assert.match(metrics.stderr, /^ckpt: --metrics-token \(or \$CKPT_METRICS_TOKEN\) must be at least 12/);
  }
  // An empty --host is not a host beyond this machine: it is no host at all.
  const empty = await runCli(['dashboard', '--store', store, '--host', '']);
  assert.equal(empty.code, 2, empty.stderr);
  assert.match(empty.stderr, /^ckpt: --host is empty/);
});

it('a store path with no store exits 2 with one line, creating nothing', async () => {
  const result = await runCli(['dashboard', '--store', `sqlite:${join(dir, 'nothing-here.db')}`]);
  assert.equal(result.code, 2);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.ok(!existsSync(join(dir, 'nothing-here.db')));
});

it('a port in use exits 2 with one line', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const port = (taken.address() as AddressInfo).port;
    const result = await runCli(['dashboard', '--store', store, '--port', String(port)]);
    assert.equal(result.code, 2);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, /in use; choose another with --port/);
  } finally {
    taken.close();
  }
});

it('with a token, every request without it gets 401; the bearer header, ?token= (then its cookie) get in', async () => {
  const dashboard = await startDashboard(['--host', '0.0.0.0'], { CKPT_DASHBOARD_TOKEN: token });
  try {
    const local = dashboard.url.replace('0.0.0.0', '127.0.0.1');
    for (const path of ['/', '/app.js', '/api/overview', '/api/instances/1', '/metrics', '/nowhere']) {
      assert.equal((await get(local + path)).status, 401, `${path} without the token`);
      assert.equal((await get(local + path, { authorization: 'Bearer wrong-token-xxxxxxxx' })).status, 401, `${path} with a wrong token`);
    }
    assert.equal((await get(`${local}/api/overview?token=nope`)).status, 401);
    const withBearer = await get(`${local}/api/overview`, { authorization: `Bearer ${token}` });
    assert.equal(withBearer.status, 200);
    const overview = JSON.parse(withBearer.body) as { instances: { job: string; params: { apiToken: string } }[] };
    assert.equal(overview.instances[0]?.job, 'dashboard-demo');
    assert.equal(overview.instances[0]?.params.apiToken, '[redacted]');
    assert.equal((await get(`${local}/metrics`, { authorization: `Bearer ${token}` })).status, 200);

    const opened = await get(`${local}/?token=${token}`);
    assert.equal(opened.status, 303, 'the token leaves the address bar');
    const cookie = String(opened.headers['set-cookie']).split(';')[0] as string;
    assert.match(String(opened.headers['set-cookie']), /HttpOnly/);
    const page = await get(`${local}/`, { cookie });
    assert.equal(page.status, 200);
    assert.match(page.body, /ckpt dashboard/);
    assert.ok(!page.body.includes(token), 'the page never shows the token');
  } finally {
    await dashboard.stop();
  }
});

it('on loopback without a token: read-only, and no other Host (DNS rebinding) is served', async () => {
  const dashboard = await startDashboard([]);
  try {
    assert.equal((await get(`${dashboard.url}/api/overview`)).status, 200);
    assert.equal((await get(`${dashboard.url}/api/overview`, { host: 'attacker.example' })).status, 403);
    const post = await new Promise<number>((resolve, reject) => {
      request(`${dashboard.url}/api/overview`, { method: 'POST' }, (response) => resolve(response.statusCode ?? 0))
        .on('error', reject)
        .end();
    });
    assert.equal(post, 405);
    const view = JSON.parse((await get(`${dashboard.url}/api/instances/1`)).body) as { commands: { reset: string }; instance: { params: object } };
    assert.ok(!JSON.stringify(view).includes('hunter2-in-clear'), 'the redacted param never reaches the page');
    assert.match(view.commands.reset, /^ckpt reset dashboard-demo --param region=eu --param 'apiToken=<apiToken>' --store sqlite:/);
  } finally {
    const result = await dashboard.stop();
    assert.equal(result.code, 0, 'SIGTERM stops the dashboard cleanly');
  }
});

/** An instance's audit chain as the dashboard shows it, once its background check has answered. */
async function chainOf(url: string, id: number): Promise<{ state: string; chained?: number; eventId?: number; where?: string; problem?: string }> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(100)) {
    const view = JSON.parse((await get(`${url}/api/instances/${id}`)).body) as { chain: { state: string } };
    if (view.chain.state !== 'checking') return view.chain;
  }
  assert.fail(`instance ${id}: the chain was still being checked after 30 s`);
}

it('the audit chain per instance: intact with its event count; an edited event row broken, naming it; a keyed chain without the key unverifiable', {
  timeout: 90_000,
}, async () => {
  const runRegion = async (region: string, env: NodeJS.ProcessEnv = {}) => {
    const run = await runCli(['run', fixture('dashboard-job.ts'), '--store', store, '--quiet', '--param', `region=${region}`], {
      env: { CKPT_TEST_SHARDS: '2', CKPT_TEST_RECORDS: '10', CKPT_TEST_DELAY_MS: '0', ...env },
    });
    assert.equal(run.code, 0, run.stderr);
  };
  await runRegion('tampered');
  await runRegion('keyed', { CKPT_SECRET_KEY: 'dashboard-chain-key-0123456789abcdef01234' });
  // The events live in the SQLite store's side file; one row edited by plain SQL, as test/audit-tamper.test.ts does.
  const side = new DatabaseSync(`${join(dir, 'ckpt.db')}.effects`);
  const main = new DatabaseSync(join(dir, 'ckpt.db'), { readOnly: true });
  let ids: { intact: number; tampered: number; keyed: number };
  let edited: { id: number; type: string; seq: number };
  try {
    const idOf = (region: string) => Number((main.prepare('SELECT id FROM instances WHERE params LIKE ?').get(`%"region":"${region}"%`) as { id: number }).id);
    ids = {
      intact: Number((main.prepare('SELECT min(id) AS id FROM instances').get() as { id: number }).id),
      tampered: idOf('tampered'),
      keyed: idOf('keyed'),
    };
    const row = side.prepare('SELECT id, type, seq FROM events WHERE instance_id = ? ORDER BY id LIMIT 1 OFFSET 3').get(ids.tampered) as {
      id: number;
      type: string;
      seq: number;
    };
    edited = { id: Number(row.id), type: row.type, seq: Number(row.seq) };
    side.prepare('UPDATE events SET at = at + 1 WHERE id = ?').run(edited.id);
  } finally {
    side.close();
    main.close();
  }
  const verify = await runCli(['audit', 'dashboard-demo', '--store', store, '--param', 'region=tampered', '--verify']);
  assert.equal(verify.code, 1, 'ckpt audit --verify finds the edit too');

  const dashboard = await startDashboard([]);
  try {
    const intact = await chainOf(dashboard.url, ids.intact);
    assert.equal(intact.state, 'intact', JSON.stringify(intact));
    assert.ok((intact.chained ?? 0) > 0, 'with its event count');

    const broken = await chainOf(dashboard.url, ids.tampered);
    assert.equal(broken.state, 'broken', JSON.stringify(broken));
    assert.equal(broken.eventId, edited.id);
    assert.match(broken.where ?? '', new RegExp(`^event ${edited.id} \\(${edited.type}, .*chain position ${edited.seq}\\)$`));
    assert.match(broken.problem ?? '', /its content does not match its hash/);
    assert.ok(verify.stderr.includes(`${broken.where}: ${broken.problem}`), `the page names it as ckpt audit --verify does: ${verify.stderr}`);

    const keyed = await chainOf(dashboard.url, ids.keyed);
    assert.equal(keyed.state, 'unverifiable', JSON.stringify(keyed));
    assert.match(keyed.problem ?? '', /CKPT_SECRET_KEY/);
  } finally {
    await dashboard.stop();
  }
  // With the key, the keyed chain verifies.
  const withKey = await startDashboard([], { CKPT_SECRET_KEY: 'dashboard-chain-key-0123456789abcdef01234' });
  try {
    assert.equal((await chainOf(withKey.url, ids.keyed)).state, 'intact');
  } finally {
    await withKey.stop();
  }
});
