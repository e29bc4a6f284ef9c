import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { firstLine } from '../../errors.ts';
import { isAliveLocalWorker, isDeadLocalWorker } from '../../job/workers.ts';
import { hostHeaderIsLoopback, presentedToken, requestUrl, TOKEN_COOKIE, tokenMatches } from '../../metrics/http-access.ts';
import { type ListeningServer, listen } from '../../metrics/metrics-server.ts';
import type { RunInfo, ShardInfo, Store } from '../../store/store.ts';
import { formatMs } from '../format.ts';
import { ChainChecker } from './chain-check.ts';
import { instanceView, type Liveness, type ShardQuery } from './instance-view.ts';
import { overviewView } from './overview-view.ts';
import { PAGE_HTML } from './page-html.ts';
import { PAGE_SCRIPT } from './page-script.ts';
import { StoreReader } from './store-reader.ts';

export interface DashboardOptions {
  store: Store;
  port: number;
  host: string;
  /** Required on every request when set. */
  token: string | undefined;
  /** The audit chain's key (as `ckpt audit` finds it); without one a keyed chain shows unverifiable. */
  chainKey?: () => Buffer | undefined;
}

/**
 * A run the store still calls `running` whose worker is gone. The dashboard only reads, so it
 * does not mark such a run crashed (the next `ckpt run`, `ckpt status` or a worker's reap does):
 * it shows why the worker is presumed dead, by the same tests the reap uses.
 */
export const liveness: Liveness = (run: RunInfo, shard: ShardInfo | undefined, now: number) => {
  if (isDeadLocalWorker(run.worker, run.node)) return 'its process is gone (no such pid on this machine)';
  if (shard !== undefined && shard.leaseExpiresAt <= now) {
    // Never reaped (isAliveLocalWorker): stopped or frozen, it may go on when continued.
    if (isAliveLocalWorker(run.worker, run.node)) {
      return `unresponsive: its lease expired ${formatMs(now - shard.leaseExpiresAt)} ago, but its process is alive on this machine (stopped or frozen), so it is not crashed`;
    }
    return `its lease expired ${formatMs(now - shard.leaseExpiresAt)} ago`;
  }
  return null;
};

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
};

/** The dashboard's HTTP server: the page, its JSON, and /metrics for every instance on the store. */
export async function startDashboard(options: DashboardOptions): Promise<ListeningServer> {
  const reader = new StoreReader(options.store);
  const chains = new ChainChecker(options.store, options.chainKey ?? (() => undefined));
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) send(response, 503, 'application/json', JSON.stringify({ error: `the store could not be read: ${firstLine(error)}` }));
      else response.end();
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = requestUrl(request);
    if (url === undefined) {
      send(response, 400, 'text/plain', 'ckpt dashboard: the request URL cannot be read\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(response, 405, 'text/plain', 'the dashboard is read-only: use the ckpt commands it shows\n', { allow: 'GET, HEAD' });
      return;
    }
    if (options.token !== undefined) {
      const presented = presentedToken(request, url);
      if (!tokenMatches(presented, options.token)) {
        send(response, 401, 'text/plain', 'ckpt dashboard: a token is required: open /?token=… once, or send Authorization: Bearer …\n', {
          'www-authenticate': 'Bearer realm="ckpt dashboard"',
        });
        return;
      }
      // Opened with ?token=: keep it in a cookie and take it out of the address bar (and history).
      if (url.searchParams.has('token') && url.pathname === '/') {
        response.writeHead(303, {
          ...SECURITY_HEADERS,
          location: '/',
          'set-cookie': `${TOKEN_COOKIE}=${encodeURIComponent(options.token)}; HttpOnly; SameSite=Strict; Path=/`,
        });
        response.end();
        return;
      }
    } else if (!hostHeaderIsLoopback(request)) {
      send(response, 403, 'text/plain', 'ckpt dashboard: served on loopback only; start it with --host and --token to serve other hosts\n');
      return;
    }

    if (url.pathname === '/') return send(response, 200, 'text/html; charset=utf-8', PAGE_HTML);
    if (url.pathname === '/app.js') return send(response, 200, 'text/javascript; charset=utf-8', PAGE_SCRIPT);
    if (url.pathname === '/api/overview') return sendJson(response, overviewView(await reader.overview(), isDeadLocalWorker));
    const instance = /^\/api\/instances\/(\d+|default)$/.exec(url.pathname);
    if (instance !== null) {
      // `default` lets a page opened without a choice ask for the instance and the list at once.
      const id = instance[1] === 'default' ? await reader.defaultInstanceId() : Number(instance[1]);
      const data = id === undefined ? undefined : await reader.instance(id);
      if (data === undefined) return send(response, 404, 'application/json', JSON.stringify({ error: 'no such instance on this store' }));
      // The audit chain only here, for the instance shown: verified in the background, cached by its head.
      return sendJson(response, {
        ...instanceView(data, shardQuery(url), liveness, options.store.location, data.readAt),
        chain: chains.status(data.instance, data.chainHead),
      });
    }
    if (url.pathname === '/metrics') {
      const { storeMetrics } = await import('./store-metrics.ts');
      const registry = await storeMetrics(reader, liveness);
      return send(response, 200, registry.contentType, await registry.metrics());
    }
    send(response, 404, 'text/plain', 'not found\n');
  }

  return listen(server, options.port, options.host, '--port');
}

function shardQuery(url: URL): ShardQuery {
  const number = (name: string, fallback: number, max: number) => {
    const value = Number(url.searchParams.get(name) ?? fallback);
    return Number.isInteger(value) && value >= 0 ? Math.min(value, max) : fallback;
  };
  const status = url.searchParams.get('status');
  return {
    offset: number('offset', 0, Number.MAX_SAFE_INTEGER),
    limit: Math.max(1, number('limit', 50, 500)),
    status: status === 'running' || status === 'pending' || status === 'completed' ? status : 'all',
    search: (url.searchParams.get('q') ?? '').slice(0, 200),
  };
}

function sendJson(response: ServerResponse, body: unknown): void {
  send(response, 200, 'application/json', JSON.stringify(body));
}

function send(response: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, ...headers });
  response.end(body);
}
