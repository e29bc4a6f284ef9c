import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { UsageError } from '../errors.ts';
import { hostHeaderIsLoopback, presentedToken, requestUrl, tokenMatches } from './http-access.ts';

export interface ListeningServer {
  /** Base URL, e.g. http://127.0.0.1:9464 (the port the OS chose when 0 was asked). */
  url: string;
  close(): Promise<void>;
}

/** Listen, turning the errors a user causes (a port in use, a host not on this machine) into one line. */
export async function listen(server: Server, port: number, host: string, flag: string): Promise<ListeningServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') reject(new UsageError(`cannot listen on ${host}:${port}: the port is in use; choose another with ${flag}`));
      else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND' || error.code === 'EACCES')
        reject(new UsageError(`cannot listen on ${host}:${port} (${error.code}); choose another host or port (${flag})`));
      else reject(error);
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * `GET /metrics` for one worker (`ckpt run --metrics-port`): the registry its events feed. Guarded
 * as the dashboard is: with a token every request must carry it (`Authorization: Bearer`, or
 * `?token=`); without one, a request whose Host is not loopback is refused (DNS rebinding).
 */
export function serveMetrics(registry: Registry, port: number, host: string, token?: string): Promise<ListeningServer> {
  // The worker's own process serves these: nothing a request holds may throw out of this handler.
  const server = createServer((request, response) => {
    const url = requestUrl(request);
    if (url === undefined) {
      response.writeHead(400, { 'content-type': 'text/plain' }).end('ckpt metrics: the request URL cannot be read\n');
      return;
    }
    if (token !== undefined ? !tokenMatches(presentedToken(request, url), token) : !hostHeaderIsLoopback(request)) {
      const [status, text] =
        token !== undefined
          ? [401, 'a token is required: send Authorization: Bearer …']
          : [403, 'served on loopback only; give --metrics-token to serve other hosts'];
      response.writeHead(status, { 'content-type': 'text/plain' }).end(`ckpt metrics: ${text}\n`);
      return;
    }
    if (request.method !== 'GET' || url.pathname !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
    );
  });
  return listen(server, port, host, '--metrics-port');
}
