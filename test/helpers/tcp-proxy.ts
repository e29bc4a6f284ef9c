import { createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy between a worker and a database server that can, at a moment, stop forwarding
 * without closing either socket: a network partition as both ends see it (no FIN, no RST, just
 * silence), never healed. Connections opened after the cut are accepted and left silent too.
 */
export interface TcpProxy {
  port: number;
  /** Stop forwarding in both directions, on every connection, for good. */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs: [Socket, Socket][] = [];
  let cut = false;
  const keep = (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  };
  const server: Server = createServer((client) => {
    keep(client);
    if (cut) return client.pause();
    const upstream = new (client.constructor as typeof Socket)();
    keep(upstream);
    upstream.connect(target.port, target.host);
    // Not pipe(): an end or a close on one side must not reach the other after the cut.
    client.on('data', (chunk) => {
      if (!cut) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!cut) client.write(chunk);
    });
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on('end', () => {
        if (!cut) to.end();
      });
    }
    pairs.push([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  return {
    port: address.port,
    cut() {
      cut = true;
      for (const [client, upstream] of pairs) {
        client.pause();
        upstream.pause();
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
