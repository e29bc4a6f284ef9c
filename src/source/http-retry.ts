import { setTimeout as sleep } from 'node:timers/promises';

export interface HttpRetryOptions {
  /** Tries per request, the first included; default 8. */
  attempts?: number;
  /** Delay before the first retry, doubled each time, with jitter; default 250 ms. */
  baseMs?: number;
  /** Cap of the computed delay; default 30 s. */
  maxMs?: number;
  /** Cap of a server's `Retry-After`; default 5 min. */
  maxRetryAfterMs?: number;
}

/** What a retry is about to do, for logs and metrics (the URL is given without its query). */
export interface HttpRetryInfo {
  url: string;
  attempt: number;
  delayMs: number;
  status?: number;
  error?: string;
}

/**
 * `Retry-After` in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the past is 0;
 * anything else unreadable is undefined (the computed backoff applies).
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Exponential backoff with "equal jitter": half the doubled delay, plus a random share of the other
 * half, so clients that failed together do not retry in lockstep, and never retry at once.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** 429 and every 5xx are worth another try; other statuses are answers. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** Sleep unless `signal` aborts first; false when it did. */
export async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** A URL fit for messages: its query may carry a token, so only origin and path are shown. */
export function describeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}
