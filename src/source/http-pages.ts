import { redactText } from '../redact.ts';
import { isSecret, type Secret } from '../secret.ts';
import { paged } from './cursor.ts';
import { backoffMs, describeUrl, type HttpRetryInfo, type HttpRetryOptions, isRetryableStatus, parseRetryAfter, pause } from './http-retry.ts';
import type { Source, SourceItem } from './source.ts';

/** Where a record sits in a paged API: the cursor that fetched its page (null: the first page) and its index there. */
export interface PagePosition {
  cursor: string | null;
  index: number;
}

/** Request headers by name; a `secret(...)` value is revealed only into the request. */
export type HttpHeaderValues = Record<string, string | Secret<string>>;

export interface HttpPagesOptions<R, Page> {
  /** The first page's URL (the cursor is added as `cursorParam`), or the URL for a cursor. */
  url: string | URL | ((cursor: string | undefined) => string | URL);
  /** Query parameter the cursor goes in when `url` is a string; default `cursor`. */
  cursorParam?: string;
  /** The records of a page. */
  items: (page: Page) => readonly R[];
  /** The next page's cursor, or undefined/null/'' on the last page. */
  next: (page: Page, response: Response) => string | null | undefined;
  /** Request headers (auth): values may be `secret(...)`; a function is called for every request (token refresh). */
  headers?: HttpHeaderValues | (() => HttpHeaderValues | Promise<HttpHeaderValues>);
  /** Method, body, … of each request; default GET. */
  init?: Omit<RequestInit, 'signal' | 'headers'>;
  /** Read a page from its response; default `response.json()`. */
  parse?: (response: Response) => Promise<Page>;
  retry?: HttpRetryOptions;
  /** Time allowed per request, body included; default 30 s. */
  timeoutMs?: number;
  /** Called before each retry: log it, count it. Carries no header and no query string. */
  onRetry?: (info: HttpRetryInfo) => void;
  /** Identity of the data, if the API has one (a snapshot id, an export's date); default none. */
  fingerprint?: () => Promise<string>;
  /** The `fetch` to use (a proxy agent, a test double); default the global one. */
  fetch?: typeof fetch;
}

/** A page request that failed for good: a status that is an answer (401, 404…) or retries exhausted. */
export class HttpSourceError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined, options?: ErrorOptions) {
    super(message, options);
    this.name = 'HttpSourceError';
    this.status = status;
  }
}

/**
 * The records of a cursor-paged HTTP API (a `next` token, an `after` id, a next-page URL). The
 * position is the page's cursor and the record's index in it, so a resume fetches that page again
 * and goes on after the index: the API must return the same page for the same cursor (most cursor
 * APIs do; offset-paged ones with changing data do not). Requests are retried on network errors,
 * timeouts, 429 and 5xx with exponential backoff and jitter, honouring `Retry-After`. The run's
 * signal ends the read at once, in a request or in a backoff sleep.
 */
export function httpPages<R, Page = unknown>(options: HttpPagesOptions<R, Page>): Source<R, PagePosition> {
  const fetchImpl = options.fetch ?? fetch;
  const attempts = options.retry?.attempts ?? 8;
  const baseMs = options.retry?.baseMs ?? 250;
  const maxMs = options.retry?.maxMs ?? 30_000;
  const maxRetryAfterMs = options.retry?.maxRetryAfterMs ?? 300_000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const parse = options.parse ?? ((response: Response) => response.json() as Promise<Page>);

  const urlFor = (cursor: string | undefined): URL => {
    if (typeof options.url === 'function') return new URL(options.url(cursor));
    const url = new URL(options.url);
    if (cursor !== undefined) url.searchParams.set(options.cursorParam ?? 'cursor', cursor);
    return url;
  };

  const headers = async (): Promise<Record<string, string>> => {
    const values = typeof options.headers === 'function' ? await options.headers() : (options.headers ?? {});
    return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, isSecret(value) ? value.reveal() : value]));
  };

  /** One page, retried as needed; undefined when `signal` stopped it. */
  const fetchPage = async (cursor: string | undefined, signal: AbortSignal): Promise<{ page: Page; response: Response } | undefined> => {
    const url = urlFor(cursor);
    const where = `${options.init?.method ?? 'GET'} ${describeUrl(url)}`;
    // fetch refuses such a URL, naming it whole in its error: no try can succeed, and none may leak it.
    if (url.username !== '' || url.password !== '') {
      throw new HttpSourceError(
        `${where}: the URL holds credentials (user:password@), which fetch refuses; send them in a header, e.g. Authorization`,
        undefined,
      );
    }
    let last = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (signal.aborted) return undefined;
      let status: number | undefined;
      let retryAfter: number | undefined;
      try {
        const response = await fetchImpl(url, { ...options.init, headers: await headers(), signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) });
        status = response.status;
        if (response.ok) return { page: await parse(response), response };
        await response.body?.cancel().catch(() => undefined);
        if (!isRetryableStatus(response.status)) {
          throw new HttpSourceError(`${where} answered ${response.status} ${response.statusText}`.trimEnd(), response.status);
        }
        retryAfter = parseRetryAfter(response.headers.get('retry-after'));
        last = `${response.status} ${response.statusText}`.trimEnd();
      } catch (error) {
        if (signal.aborted) return undefined;
        if (error instanceof HttpSourceError) throw error;
        // A body that is not what `parse` expects is an answer too; a connection cut mid-body is not.
        if (error instanceof SyntaxError)
          throw new HttpSourceError(`${where}: the page could not be read (${redactText(error.message)})`, status, { cause: error });
        last = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errorText(error);
      }
      if (attempt === attempts) break;
      const delayMs = retryAfter !== undefined ? Math.min(retryAfter, maxRetryAfterMs) : backoffMs(attempt, baseMs, maxMs);
      options.onRetry?.({ url: describeUrl(url), attempt, delayMs, ...(status === undefined ? { error: last } : { status }) });
      if (!(await pause(delayMs, signal))) return undefined;
    }
    throw new HttpSourceError(`${where} still failing after ${attempts} attempts (last: ${last})`, undefined);
  };

  return {
    // A fetched page's records are walked without a promise per record.
    ...paged<R, PagePosition>(async function* (after, { signal }) {
      let cursor = after?.cursor ?? undefined;
      let from = after === undefined ? 0 : after.index + 1;
      // The cursors this read fetched: one coming round again would read the same pages for ever.
      const fetchedCursors = new Set<string | undefined>([cursor]);
      for (;;) {
        const fetched = await fetchPage(cursor, signal);
        if (fetched === undefined) return;
        const items = options.items(fetched.page);
        const page: SourceItem<R, PagePosition>[] = [];
        for (let index = from; index < items.length; index++) page.push({ position: { cursor: cursor ?? null, index }, record: items[index] as R });
        yield page;
        const next = options.next(fetched.page, fetched.response);
        if (next === undefined || next === null || next === '') return;
        if (fetchedCursors.has(next)) {
          throw new HttpSourceError(
            `${describeUrl(urlFor(cursor))}: the API gave the cursor ${JSON.stringify(redactText(String(next)))} again, of a page this read already fetched; stopping rather than loop`,
            undefined,
          );
        }
        fetchedCursors.add(next);
        cursor = next;
        from = 0;
      }
    }),
    ...(options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint }),
  };
}

/**
 * A network error's own words: undici puts the useful part (ECONNRESET, …) in its cause. They may
 * quote the URL, query and all, and go into retries' info and the stored error: redacted.
 */
function errorText(error: unknown): string {
  const message = (error as Error).message ?? String(error);
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return redactText(cause?.code !== undefined ? `${message} (${cause.code})` : message);
}
