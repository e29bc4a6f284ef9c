// The stream servers the stream-source tests use: Redis on $REDIS_URL (default 127.0.0.1:6379) and
// NATS with JetStream on $NATS_URL (default 127.0.0.1:4222), as on CI. When one does not answer,
// its tests are skipped with one line saying so.
import { createClient } from 'redis';

export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const natsUrl = process.env.NATS_URL ?? '127.0.0.1:4222';

/** The slice the tests use: raw commands, RESP2 replies. */
export interface RedisClient {
  sendCommand(args: string[]): Promise<unknown>;
}

/** false when Redis answers, else why the Redis tests are skipped. */
export async function redisSkip(): Promise<string | false> {
  try {
    await withRedis((client) => client.sendCommand(['PING']));
    return false;
  } catch (error) {
    return `no Redis answering on ${redisUrl} (${(error as Error).message})`;
  }
}

export async function withRedis<T>(work: (client: RedisClient) => Promise<T>): Promise<T> {
  const client = createClient({ url: redisUrl, RESP: 2, socket: { reconnectStrategy: false, connectTimeout: 3000 } });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(client as RedisClient);
  } finally {
    await client.close();
  }
}

/** Adds `count` entries `n=<i>` (auto IDs), 500 per round trip; returns their IDs in order. */
export async function addEntries(client: RedisClient, stream: string, count: number, from = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let start = from; start < from + count; start += 500) {
    const batch = [];
    for (let i = start; i < Math.min(from + count, start + 500); i++) batch.push(client.sendCommand(['XADD', stream, '*', 'n', String(i)]));
    ids.push(...((await Promise.all(batch)) as string[]));
  }
  return ids;
}

/** false when NATS with JetStream answers, else why the JetStream tests are skipped. */
export async function natsSkip(): Promise<string | false> {
  try {
    await withJetStream(async () => undefined);
    return false;
  } catch (error) {
    return `no NATS with JetStream answering on ${natsUrl} (${(error as Error).message})`;
  }
}

export async function withJetStream<T>(
  work: (api: { js: import('@nats-io/jetstream').JetStreamClient; jsm: import('@nats-io/jetstream').JetStreamManager }) => Promise<T>,
): Promise<T> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstream, jetstreamManager } = await import('@nats-io/jetstream');
  const connection = await connect({ servers: natsUrl, timeout: 3000 });
  try {
    return await work({ js: jetstream(connection), jsm: await jetstreamManager(connection) });
  } finally {
    await connection.close();
  }
}

/** A fresh stream `name` on subjects `<name>.>` holding `count` messages (`<name>.a`/`.b` alternately). */
export async function freshJetStream(name: string, count: number): Promise<void> {
  await withJetStream(async ({ js, jsm }) => {
    await jsm.streams.delete(name).catch(() => undefined);
    await jsm.streams.add({ name, subjects: [`${name}.>`] });
    await publish(js, name, count);
  });
}

export async function publish(js: import('@nats-io/jetstream').JetStreamClient, name: string, count: number, from = 0): Promise<void> {
  for (let start = from; start < from + count; start += 500) {
    const batch = [];
    for (let i = start; i < Math.min(from + count, start + 500); i++) batch.push(js.publish(`${name}.${i % 2 === 0 ? 'a' : 'b'}`, JSON.stringify({ i })));
    await Promise.all(batch);
  }
}
