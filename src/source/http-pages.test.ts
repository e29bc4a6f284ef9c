import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { secret } from '../secret.ts';
import { HttpSourceError, httpPages, type PagePosition } from './http-pages.ts';
import { backoffMs, type HttpRetryInfo, parseRetryAfter } from './http-retry.ts';
import type { Source } from './source.ts';

interface Page {
  items: number[];
  next: string | null;
}

/** A real server on 127.0.0.1: 3 pages of 4 items; `answer` may take over a request. */
async function startServer(answer?: (request: IncomingMessage, response: ServerResponse, hits: number) => boolean) {
  const seen: IncomingMessage[] = [];
  const server = createServer((request, response) => {
    seen.push(request);
    if (answer?.(request, response, seen.length)) return;
    const url = new URL(request.url ?? '/', 'http://x');
    const page = Number(url.searchParams.get('cursor')?.slice(1) ?? 0);
    const body: Page = { items: [0, 1, 2, 3].map((i) => page * 4 + i), next: page < 2 ? `p${page + 1}` : null };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => server.close());
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/items?token=sekrit`, seen };
}

function pages(url: string, extra: Partial<Parameters<typeof httpPages<number, Page>>[0]> = {}): Source<number, PagePosition> {
  return httpPages<number, Page>({ url, items: (page) => page.items, next: (page) => page.next, retry: { baseMs: 5, maxMs: 20 }, ...extra });
}

async function collect<R, P>(source: Source<R, P>, from?: P, signal = new AbortController().signal) {
  const items: { position: P; record: R }[] = [];
  for await (const item of source.read(from, { signal })) items.push(item);
  return items;
}

test('httpPages: follows the cursor; the position is the page cursor and the index; a resume refetches that page and goes on', async () => {
  const { url, seen } = await startServer();
  const all = await collect(pages(url));
  assert.deepEqual(
    all.map((item) => item.record),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  );
  assert.deepEqual(all[5]?.position, { cursor: 'p1', index: 1 });
  assert.deepEqual(all[0]?.position, { cursor: null, index: 0 });
  for (const at of [0, 3, 5, 7, 11]) {
    const rest = await collect(pages(url), all[at]?.position);
    assert.deepEqual(rest, all.slice(at + 1), `resume after ${JSON.stringify(all[at]?.position)}`);
  }
  assert.equal(new URL(seen[1]?.url ?? '', 'http://x').searchParams.get('token'), 'sekrit', 'the URL keeps its own query');
});

test('httpPages: retries 429, 500 and a cut connection; honours Retry-After in seconds and as a date; sends secret headers', async () => {
  const { url, seen } = await startServer((request, response, hits) => {
    if (hits === 1) {
      response.writeHead(429, { 'retry-after': '1' }).end();
      return true;
    }
    if (hits === 2) {
      response.writeHead(503, { 'retry-after': new Date(Date.now() + 1500).toUTCString() }).end();
      return true;
    }
    if (hits === 3) {
      response.writeHead(500).end('oops');
      return true;
    }
    if (hits === 4) {
      request.socket.destroy();
      return true;
    }
    return false;
  });
  const retries: HttpRetryInfo[] = [];
  const started = Date.now();
  const all = await collect(pages(url, { headers: { authorization: secret('Bearer t0ken') }, onRetry: (info) => retries.push(info) }));
  assert.equal(all.length, 12);
  assert.deepEqual(
    retries.map((retry) => retry.status ?? 'network'),
    [429, 503, 500, 'network'],
  );
  assert.equal(retries[0]?.delayMs, 1000);
  assert.ok((retries[1]?.delayMs ?? 0) > 0 && (retries[1]?.delayMs ?? 0) <= 1500, `date Retry-After: ${retries[1]?.delayMs} ms`);
  assert.ok(Date.now() - started >= 1000 + (retries[1]?.delayMs ?? 0) - 50, 'the Retry-After waits were kept');
  assert.equal(seen.at(-1)?.headers.authorization, 'Bearer t0ken');
  assert.doesNotMatch(JSON.stringify(retries), /sekrit|t0ken/);
});

test('httpPages: an answer such as 404 fails at once, without the query or headers in the message; retries are bounded', async () => {
  const notFound = await startServer((_request, response) => {
    response.writeHead(404, 'Not Found').end();
    return true;
  });
  const error = await collect(pages(notFound.url, { headers: { authorization: secret('Bearer t0ken') } })).then(
    () => undefined,
    (failure: unknown) => failure,
  );
  assert.ok(error instanceof HttpSourceError);
  assert.equal(error.status, 404);
  assert.match(error.message, /GET http:\/\/127\.0\.0\.1:\d+\/items answered 404 Not Found/);
  assert.doesNotMatch(error.message, /sekrit|t0ken/);
  assert.equal(notFound.seen.length, 1);

  const down = await startServer((_request, response) => {
    response.writeHead(502).end();
    return true;
  });
  await assert.rejects(collect(pages(down.url, { retry: { attempts: 3, baseMs: 1, maxMs: 2 } })), /still failing after 3 attempts \(last: 502 Bad Gateway\)/);
  assert.equal(down.seen.length, 3);
});

test('httpPages: a URL with user:password@ fails at once as not transient, and no message or retry carries a credential', async () => {
  const server = await startServer();
  const withCredentials = server.url.replace('http://', 'http://svc:pw-HUNTER2@').replace('token=sekrit', 'api_key=KEY-99');
  const retries: HttpRetryInfo[] = [];
  const started = Date.now();
  const error = await collect(pages(withCredentials, { onRetry: (info) => retries.push(info) })).then(
    () => undefined,
    (failure: unknown) => failure,
  );
  assert.ok(error instanceof HttpSourceError, String(error));
  assert.match(error.message, /holds credentials/);
  assert.doesNotMatch(error.message, /HUNTER2|KEY-99/);
  assert.equal(retries.length, 0, 'not retried: no try can succeed');
  assert.ok(Date.now() - started < 1000);

  // A network error that quotes the URL (query and all) is retried, and shown redacted.
  const quoting: typeof fetch = async (input) => {
    throw new TypeError(`fetch failed for ${String(input)}`, { cause: { code: 'ECONNRESET' } });
  };
  const keyed = server.url.replace('token=sekrit', 'api_key=KEY-99&page_size=5');
  const failure = await collect(pages(keyed, { fetch: quoting, onRetry: (info) => retries.push(info), retry: { attempts: 2, baseMs: 1, maxMs: 2 } })).then(
    () => undefined,
    (reason: unknown) => reason,
  );
  assert.ok(failure instanceof HttpSourceError);
  assert.match(failure.message, /api_key=\[redacted\]&page_size=5 \(ECONNRESET\)/);
  assert.equal(retries.length, 1);
  for (const text of [failure.message, JSON.stringify(retries)]) assert.doesNotMatch(text, /KEY-99|sekrit/);
});

test('httpPages: the run signal stops a backoff sleep at once', async () => {
  const { url } = await startServer((_request, response) => {
    response.writeHead(503, { 'retry-after': '60' }).end();
    return true;
  });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  const started = Date.now();
  assert.deepEqual(await collect(pages(url), undefined, controller.signal), []);
  assert.ok(Date.now() - started < 2000, `stopped after ${Date.now() - started} ms`);
});

test('Retry-After parsing and the backoff curve', () => {
  const now = Date.parse('2026-11-24T12:00:00Z');
  assert.equal(parseRetryAfter('7', now), 7000);
  assert.equal(parseRetryAfter('Tue, 24 Nov 2026 12:00:03 GMT', now), 3000);
  assert.equal(parseRetryAfter('Tue, 24 Nov 2026 11:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(
    backoffMs(1, 100, 10_000, () => 0),
    50,
  );
  assert.equal(
    backoffMs(4, 100, 10_000, () => 1),
    800,
  );
  assert.equal(
    backoffMs(20, 100, 10_000, () => 1),
    10_000,
  );
});

test('httpPages: an API whose cursors come round again (p1, p2, p1, …) fails the read naming the cursor, instead of reading the same records for ever', {
  timeout: 10_000,
}, async () => {
  const { url, seen } = await startServer((request, response) => {
    const cursor = new URL(request.url ?? '/', 'http://x').searchParams.get('cursor');
    // The second page's next points back at it: the last page answers the first cursor again.
    const body: Page = cursor === null ? { items: [0, 1], next: 'p1' } : cursor === 'p1' ? { items: [2, 3], next: 'p2' } : { items: [4, 5], next: 'p1' };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(body));
    return true;
  });
  const items: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const item of pages(url).read(undefined, { signal: new AbortController().signal })) items.push(item.record);
    })(),
    (error: unknown) => error instanceof HttpSourceError && /gave the cursor "p1" again/.test(error.message),
  );
  assert.deepEqual(items, [0, 1, 2, 3, 4, 5], 'each record once');
  assert.equal(seen.length, 3);
});
