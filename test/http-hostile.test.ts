// Requests nobody should send, to the two servers ckpt opens: a worker's /metrics (ckpt run
// --metrics-port) and the dashboard. Whatever arrives, the server answers it with a status and a
// line, never a stack, and goes on: a running worker above all must not die of a bad request.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const dir = tempDir('ckpt-http-hostile-');
after(() => rmSync(dir, { recursive: true, force: true }));
const token = 'hostile-token-0123456789';

/** Writes `request` byte for byte on a fresh socket; the status line of the answer (or '' if none). */
function raw(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => socket.write(request));
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      answer += chunk;
      if (answer.includes('\r\n\r\n')) socket.end();
    });
    const done = () => resolve(answer);
    socket.on('close', done).on('error', done);
    socket.setTimeout(5_000, () => socket.destroy());
  });
}

/** Requests that a server must answer, not throw on: an absolute URL Node's parser passes but `new URL` cannot read, and cookies that are not percent-encoding. */
const hostile = (host: string) => [
  `GET http://[ HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
  `GET http://[::1 HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
  `GET /metrics HTTP/1.1\r\nHost: ${host}\r\nCookie: ckpt_dashboard_token=%E0%A4%A\r\n\r\n`,
  `GET /metrics HTTP/1.1\r\nHost: ${host}\r\nCookie: ckpt_dashboard_token=%\r\n\r\n`,
  `GET /metrics?token=%ZZ HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
];

const statusOf = (answer: string) => /^HTTP\/1\.1 (\d+)/.exec(answer)?.[1] ?? `no answer: ${JSON.stringify(answer)}`;

/** 400 for a URL that cannot be read; with a token, 401 for one that cannot be read either; else what /metrics answers anyone. */
function expectedStatus(request: string, withToken: boolean): string {
  if (request.startsWith('GET http://[')) return '400';
  return withToken ? '401' : '200';
}

for (const withToken of [false, true]) {
  it(`a worker's /metrics (${withToken ? 'with' : 'without'} a token) answers malformed requests; the run completes`, { timeout: 90_000 }, async () => {
    const store = `sqlite:${join(dir, `worker-${withToken}.db`)}`;
    const run = spawnCli(
      ['run', fixture('dashboard-job.ts'), '--store', store, '--metrics-port', '0', '--quiet', ...(withToken ? ['--metrics-token', token] : [])],
      { env: { CKPT_TEST_SHARDS: '1', CKPT_TEST_RECORDS: '400', CKPT_TEST_DELAY_MS: '5' } },
    );
    const url = await new Promise<string>((resolve, reject) => {
      run.child.stderr?.on('data', (chunk: Buffer) => {
        const found = /metrics on (http:\S+)/.exec(String(chunk));
        if (found) resolve(found[1] as string);
      });
      run.child.on('exit', () => reject(new Error('the run ended before it served metrics')));
    });
    const host = new URL(url).host;
    for (const request of hostile(host)) {
      const answer = await raw(url, request);
      assert.equal(statusOf(answer), expectedStatus(request, withToken), `${JSON.stringify(request)}: ${JSON.stringify(answer.slice(0, 200))}`);
      assert.doesNotMatch(answer, /\n\s+at /, 'no stack in the answer');
    }
    const scrape = await fetch(url, withToken ? { headers: { authorization: `Bearer ${token}` } } : {});
    assert.equal(scrape.status, 200, 'still serving after them');
    const result = await run.done;
    assert.equal(result.code, 0, `the run completed: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /unexpected error/);
  });
}

it('the dashboard: an unreadable URL is 400, a cookie not percent-encoded 401, not a 503', { timeout: 60_000 }, async () => {
  const store = `sqlite:${join(dir, 'dashboard.db')}`;
  const job = await runCli(['run', fixture('dashboard-job.ts'), '--store', store, '--quiet'], {
    env: { CKPT_TEST_SHARDS: '1', CKPT_TEST_RECORDS: '10', CKPT_TEST_DELAY_MS: '0' },
  });
  assert.equal(job.code, 0, job.stderr);
  for (const withToken of [false, true]) {
    const dashboard = spawnCli(['dashboard', '--store', store, '--port', '0', ...(withToken ? ['--token', token] : [])]);
    const line = await waitForOutput(dashboard.child, (out) => /on http:\/\/\S+\//.test(out));
    const url = (/on (http:\/\/\S+?)\/ /.exec(line) as RegExpExecArray)[1] as string;
    const host = new URL(url).host;
    try {
      for (const request of hostile(host)) {
        const answer = await raw(url, request);
        assert.equal(
          statusOf(answer),
          expectedStatus(request, withToken),
          `${JSON.stringify(request)} (token ${withToken}): ${JSON.stringify(answer.slice(0, 200))}`,
        );
        assert.doesNotMatch(answer, /could not be read|\n\s+at /);
      }
      assert.equal((await fetch(`${url}/api/overview`, withToken ? { headers: { authorization: `Bearer ${token}` } } : {})).status, 200);
    } finally {
      dashboard.child.kill('SIGTERM');
      await dashboard.done;
    }
  }
});
