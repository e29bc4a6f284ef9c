import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/** 127.0.0.0/8, ::1 and localhost: the only addresses served without a token. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

export const TOKEN_COOKIE = 'ckpt_dashboard_token';

/** The token a request carries: `Authorization: Bearer`, the cookie the page sets, or `?token=`. */
export function presentedToken(request: IncomingMessage, url: URL): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined && /^Bearer\s+/i.test(header)) return header.replace(/^Bearer\s+/i, '').trim();
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === TOKEN_COOKIE) return decodeURIComponent(value.join('='));
  }
  return url.searchParams.get('token') ?? undefined;
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
