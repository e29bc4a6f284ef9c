// Who may read what our HTTP servers serve (the dashboard, a worker's /metrics): one rule for both.
// Without a token, loopback only, and only requests that name a loopback Host; with one, every
// request carries it. The token is checked when the server starts, before anything is opened.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { UsageError } from '../errors.ts';

/** How `ckpt run --metrics-port` names its flags in the refusals of checkServeToken. */
export const METRICS_ACCESS = { server: "the worker's metrics", hostFlag: '--metrics-host', tokenFlag: '--metrics-token', tokenEnv: 'CKPT_METRICS_TOKEN' };

/** Fewer characters than this is a password, not a token; `openssl rand -hex 16` gives 32. */
export const MIN_TOKEN_LENGTH = 12;

/**
 * The token a server is started with, or why not (one line, exit 2): required when `host` is not
 * loopback; at least 12 characters, none of them white space (12 spaces is no token, and a
 * token with spaces could not travel in a Bearer header intact).
 */
export function checkServeToken(
  host: string,
  token: string | undefined,
  what: { server: string; hostFlag: string; tokenFlag: string; tokenEnv: string },
): void {
  if (host.trim() === '') throw new UsageError(`${what.hostFlag} is empty: give a host name or address to listen on (127.0.0.1 when not given)`);
  if (!isLoopback(host) && token === undefined) {
    throw new UsageError(
      `${what.hostFlag} ${host} serves ${what.server} beyond this machine: give ${what.tokenFlag} T (or set $${what.tokenEnv}) so every request must carry it`,
    );
  }
  if (token !== undefined && (token.length < MIN_TOKEN_LENGTH || /\s/.test(token))) {
    throw new UsageError(`${what.tokenFlag} (or $${what.tokenEnv}) must be at least ${MIN_TOKEN_LENGTH} characters with no spaces; e.g. openssl rand -hex 16`);
  }
}

/** 127.0.0.0/8, ::1 and localhost: the only addresses served without a token. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

export const TOKEN_COOKIE = 'ckpt_dashboard_token';

/**
 * The request's URL, or undefined when it cannot be read: Node's parser lets through an
 * absolute-form target such as `GET http://[ HTTP/1.1`, on which `new URL` throws. Our servers
 * answer that with 400; thrown in a request handler, it would end the process serving it.
 */
export function requestUrl(request: IncomingMessage): URL | undefined {
  try {
    return new URL(request.url ?? '/', 'http://request.invalid');
  } catch {
    return undefined;
  }
}

/** The token a request carries: `Authorization: Bearer`, the cookie the page sets, or `?token=`. */
export function presentedToken(request: IncomingMessage, url: URL): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined && /^Bearer\s+/i.test(header)) return header.replace(/^Bearer\s+/i, '').trim();
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === TOKEN_COOKIE) return percentDecoded(value.join('='));
  }
  return url.searchParams.get('token') ?? undefined;
}

/** A cookie value as the page set it; one that is not valid percent-encoding is taken as it is (and so matches no token). */
function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Constant-time comparison (of digests, so the lengths match too). */
export function tokenMatches(presented: string | undefined, token: string): boolean {
  if (presented === undefined) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(presented), digest(token));
}

/**
 * Without a token the dashboard trusts whoever can reach loopback; a web page elsewhere could
 * still reach it through DNS rebinding (its own name resolving to 127.0.0.1), which only the
 * Host header gives away: such requests are refused.
 */
export function hostHeaderIsLoopback(request: IncomingMessage): boolean {
  const host = request.headers.host;
  if (host === undefined) return true;
  return isLoopback(host.replace(/:\d+$/, ''));
}
