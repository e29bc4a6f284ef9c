import { UsageError } from '../../errors.ts';
import type { Source, SourceItem } from '../source.ts';
import { importPeer } from './optional-peer.ts';

/** One message of a JetStream stream: its stream sequence is its position. */
export interface JetStreamMessage<D = string> {
  seq: number;
  subject: string;
  /** When the stream stored it, ISO 8601. */
  time: string;
  /** The payload, decoded by `decode` (default: UTF-8 text). */
  data: D;
}

export interface JetStreamOptions<D = string> {
  /** `host:port`, a `nats://` URL, or several. */
  servers: string | string[];
  stream: string;
  /** Only messages on this subject (wildcards allowed); default all of the stream's. */
  subject?: string;
  /** Turns a payload into `data`; default UTF-8 text. A payload it throws on is a failing record (its text as `data`): retried, then dead-lettered. */
  decode?: (payload: Uint8Array) => D;
}

// The slice of @nats-io/transport-node and @nats-io/jetstream used here.
interface NatsConnection {
  close(): Promise<void>;
}
interface StreamInfo {
  created: string;
  state: { first_seq: number; last_seq: number };
}
interface NatsMessage {
  seq: number;
  subject: string;
  time: Date;
  data: Uint8Array;
  info: { pending: number };
}
interface ConsumerMessages extends AsyncIterable<NatsMessage> {
  stop(): void;
}
interface OrderedConsumer {
  info(cached?: boolean): Promise<{ num_pending: number }>;
  consume(options: { max_messages: number }): Promise<ConsumerMessages>;
}
interface JetStreamApi {
  jetstream(connection: NatsConnection): { consumers: { get(stream: string, options: object): Promise<OrderedConsumer> } };
  jetstreamManager(connection: NatsConnection): Promise<{ streams: { info(stream: string): Promise<StreamInfo> } }>;
}

const text = new TextDecoder();

/**
 * The messages of a NATS JetStream stream in sequence order; the position is the stream sequence.
 * Each read is an ordered consumer (ephemeral, flow-controlled, recreated by the client on a gap)
 * started at the checkpoint's sequence + 1, so nothing is acknowledged and nothing is kept on
 * the server between runs: the checkpoint is the only cursor. A read ends once it has caught up
 * with the stream's last sequence as of its start; in follow mode it waits there until stopped.
 */
export function jetStream<D = string>(options: JetStreamOptions<D>): Source<JetStreamMessage<D>, number> {
  const decode = options.decode ?? ((payload: Uint8Array) => text.decode(payload) as D);
  /** A payload `decode` throws on is bad data, a record, not a throw: retried, then dead-lettered, and the stream goes on. */
  const decoded = (seq: number, base: Omit<JetStreamMessage<D>, 'data'>, payload: Uint8Array): SourceItem<JetStreamMessage<D>, number> => {
    try {
      return { position: seq, record: { ...base, data: decode(payload) } };
    } catch (error) {
      return {
        position: seq,
        record: { ...base, data: text.decode(payload) as D },
        error: new Error(`jetStream: message ${seq} of ${options.stream} could not be decoded: ${(error as Error | undefined)?.message ?? String(error)}`, {
          cause: error,
        }),
      };
    }
  };

  return {
    async *read(after, { signal, follow }) {
      const { connection, api } = await openNats(options.servers);
      try {
        const info = await streamInfo(api, connection, options.stream);
        // Following, the consumer waits at the head (the server's own pull wait) until stopped.
        const head = follow ? Number.POSITIVE_INFINITY : info.state.last_seq;
        if (head === 0 || (after !== undefined && after >= head)) return;
        const consumer = await api.jetstream(connection).consumers.get(options.stream, {
          ...(after === undefined ? { deliver_policy: 'all' } : { deliver_policy: 'by_start_sequence', opt_start_seq: after + 1 }),
          ...(options.subject === undefined ? {} : { filter_subjects: options.subject }),
        });
        if (!follow && (await consumer.info(true)).num_pending === 0) return;
        const messages = await consumer.consume({ max_messages: 512 });
        const stop = () => messages.stop();
        signal.addEventListener('abort', stop, { once: true });
        try {
          for await (const message of messages) {
            const base = { seq: message.seq, subject: message.subject, time: message.time.toISOString() };
            yield decoded(message.seq, base, message.data);
            if (message.seq >= head || (!follow && message.info.pending === 0)) return;
          }
        } finally {
          signal.removeEventListener('abort', stop);
          messages.stop();
        }
      } finally {
        await connection.close();
      }
    },

    /** Messages stored after `position` (on every subject of the stream). */
    async behind(position) {
      const { connection, api } = await openNats(options.servers);
      try {
        const info = await streamInfo(api, connection, options.stream);
        return { records: Math.max(0, info.state.last_seq - (position ?? info.state.first_seq - 1)) };
      } finally {
        await connection.close();
      }
    },

    /** The stream's creation time: a stream deleted and added again is other data (drift, exit 4). */
    async fingerprint() {
      const { connection, api } = await openNats(options.servers);
      try {
        const info = await streamInfo(api, connection, options.stream);
        return `jetstream:${options.stream}:${info.created}`;
      } finally {
        await connection.close();
      }
    },
  };
}

async function openNats(servers: string | string[]): Promise<{ connection: NatsConnection; api: JetStreamApi }> {
  const transport = 'transport-node';
  const { connect } = await importPeer<{ connect(options: object): Promise<NatsConnection> }>(
    `@nats-io/${transport}`,
    'jetStream needs the NATS client: npm install @nats-io/transport-node @nats-io/jetstream',
  );
  const api = await importPeer<JetStreamApi>(['@nats-io', 'jetstream'].join('/'), 'jetStream needs @nats-io/jetstream: npm install @nats-io/jetstream');
  try {
    return { connection: await connect({ servers, name: 'checkpointed' }), api };
  } catch (error) {
    throw new Error(`jetStream: cannot connect to NATS at ${[servers].flat().map(withoutCredentials).join(', ')}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** `nats://user:password@host` → `nats://host`: an error message names the server, never its credentials. */
function withoutCredentials(server: string): string {
  return server.replace(/^([a-z]+:\/\/)?[^@/]*@/i, '$1');
}

async function streamInfo(api: JetStreamApi, connection: NatsConnection, stream: string): Promise<StreamInfo> {
  const manager = await api.jetstreamManager(connection);
  try {
    return await manager.streams.info(stream);
  } catch (error) {
    if ((error as Error).name === 'StreamNotFoundError') throw new UsageError(`jetStream: there is no stream ${stream}`, { cause: error });
    // A name no stream can have (empty, or holding '.', '*', '>', a slash or white space): the job's to fix.
    if ((error as Error).name === 'InvalidNameError' || (error as Error).message === 'stream name required') {
      throw new UsageError(`jetStream: ${(error as Error).message}; give the name of a stream on the server (nats stream ls)`, { cause: error });
    }
    throw error;
  }
}
