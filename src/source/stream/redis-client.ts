import { isSecret, type Secret } from '../../secret.ts';
import { describeServer, importPeer } from './optional-peer.ts';
import type { StreamId } from './stream-id.ts';

/** One stream entry: its ID and its field/value pairs. */
export interface RedisStreamEntry {
  id: StreamId;
  fields: Record<string, string>;
}

/** The slice of a `redis` client the stream source uses: raw commands, RESP2 replies. */
export interface RedisLink {
  send(args: string[]): Promise<unknown>;
  close(): Promise<void>;
  /** Drops the connection at once: a command blocked on it (XREAD BLOCK) fails. */
  destroy(): void;
}

interface NodeRedisClient {
  on(event: 'error', listener: (error: Error) => void): unknown;
  connect(): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  close?(): Promise<void>;
  quit?(): Promise<unknown>;
  destroy?(): void;
}
type NodeRedis = { createClient?(options: object): NodeRedisClient };

/**
 * Opens a connection of its own. RESP2 is asked for, so replies are the flat arrays every version
 * of the client returns; no reconnection: a dropped connection fails the read, and the run that
 * follows resumes from its checkpoint on a fresh one.
 */
export async function openRedis(url: string | Secret<string>): Promise<RedisLink> {
  const specifier = 'redis';
  const redis = await importPeer<NodeRedis & { default?: NodeRedis }>(specifier, 'redisStream needs the redis package: npm install redis');
  const plain = isSecret(url) ? url.reveal() : url;
  // Loaded as ESM its functions are named exports; through a CommonJS build, on the default export.
  const createClient = redis.createClient ?? redis.default?.createClient;
  if (createClient === undefined) throw new Error('redisStream: the redis package has no createClient; install redis ≥ 4');
  const client = createClient({
    url: plain,
    RESP: 2,
    socket: { reconnectStrategy: false, connectTimeout: 10_000 },
  });
  // Errors surface on the command that meets them; without a listener one would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`redisStream: cannot connect to ${describeServer(plain)}: ${(error as Error).message}`, { cause: error });
  }
  return {
    send: (args) => client.sendCommand(args),
    close: async () => {
      try {
        await (client.close ? client.close() : client.quit?.());
      } catch {
        client.destroy?.();
      }
    },
    destroy: () => {
      try {
        client.destroy?.();
      } catch {
        // already closed
      }
    },
  };
}

/** `[[id, [field, value, …]], …]` (XRANGE, XREAD's per-stream part, XCLAIM); a deleted entry's null fields are skipped. */
export function toEntries(reply: unknown): RedisStreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const entries: RedisStreamEntry[] = [];
  for (const item of reply) {
    if (!Array.isArray(item) || !Array.isArray(item[1])) continue;
    const pairs = item[1] as unknown[];
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const name = String(pairs[i]);
      // A field named __proto__ is defined, not assigned: a field, not the object's prototype.
      if (name === '__proto__') Object.defineProperty(fields, name, { value: String(pairs[i + 1]), enumerable: true, writable: true, configurable: true });
      else fields[name] = String(pairs[i + 1]);
    }
    entries.push({ id: String(item[0]), fields });
  }
  return entries;
}

/** XREAD/XREADGROUP on one stream: null (nothing) or `[[stream, entries]]`. */
export function readReplyEntries(reply: unknown): RedisStreamEntry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  return toEntries((reply[0] as unknown[])[1]);
}

/** A flat `[name, value, …]` reply (XINFO) as an object. */
export function toRecord(reply: unknown): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  if (!Array.isArray(reply)) return record;
  for (let i = 0; i + 1 < reply.length; i += 2) record[String(reply[i])] = reply[i + 1];
  return record;
}

/** The error Redis answered with, when it is one of the given codes (`BUSYGROUP`, `NOGROUP`). */
export function isRedisError(error: unknown, code: string): boolean {
  return error instanceof Error && error.message.startsWith(code);
}
