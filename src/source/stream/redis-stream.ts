import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { UsageError } from '../../errors.ts';
import type { Secret } from '../../secret.ts';
import { paged } from '../cursor.ts';
import type { Source, SourceItem } from '../source.ts';
import { isRedisError, openRedis, type RedisLink, type RedisStreamEntry, readReplyEntries, toEntries, toRecord } from './redis-client.ts';
import { compareStreamIds, type StreamId } from './stream-id.ts';

export interface RedisStreamOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`); may be `secret(...)`. */
  url: string | Secret<string>;
  stream: string;
  /** A consumer group: entries are read with XREADGROUP and XACKed only once their checkpoint commits. */
  group?: string;
  /** This worker's consumer name in the group; default `ckpt:<host>:<pid>`. */
  consumer?: string;
  /** Entries per read; default 500. */
  count?: number;
  /** In follow mode, how long one XREAD waits at the head before asking again; default 2000 ms. */
  blockMs?: number;
}

/** The consumer group that carries the stream's identity (see `fingerprint`); it reads nothing. */
const IDENTITY_GROUP = 'ckpt-identity';

/**
 * The entries of a Redis stream in ID order; the position is the entry ID. A resume reads from the
 * checkpoint's ID on. A read ends once it has caught up with the last entry that was in the stream
 * when it began; in follow mode it waits at the head instead (XREAD BLOCK), until stopped.
 *
 * With a `group`, entries come through XREADGROUP and stay pending until the checkpoint that covers
 * them commits (`committed`), and only then are XACKed. The worker that takes the shard first claims
 * (XAUTOCLAIM) every entry still pending in the group — those of a dead worker — acknowledges the
 * ones its checkpoint already covers and processes the rest. The shard's lease keeps one reader per
 * group; should a worker that lost its lease still deliver itself entries, the gap is seen (an
 * XRANGE over the page's span) and those entries are claimed and read here, never skipped.
 */
export function redisStream(options: RedisStreamOptions): Source<RedisStreamEntry, StreamId> {
  const { stream, group } = options;
  const count = options.count ?? 500;
  if (!Number.isSafeInteger(count) || count < 1) throw new TypeError(`redisStream: count must be a whole number ≥ 1 (got ${count})`);
  const consumer = options.consumer ?? `ckpt:${hostname()}:${process.pid}`;
  const blockMs = options.blockMs ?? 2000;
  if (!Number.isSafeInteger(blockMs) || blockMs < 1) throw new TypeError(`redisStream: blockMs must be a whole number ≥ 1 (got ${blockMs})`);
  /** The read's connection while it is open: acknowledgements go through it. */
  let live: RedisLink | undefined;
  /** Entries this read delivered to itself and not yet acknowledged, in ID order. */
  const unacked: StreamId[] = [];

  const ack = async (link: RedisLink, ids: StreamId[]) => {
    for (let at = 0; at < ids.length; at += 1000) await link.send(['XACK', stream, group as string, ...ids.slice(at, at + 1000)]);
  };

  const items = (entries: RedisStreamEntry[]): SourceItem<RedisStreamEntry, StreamId>[] => entries.map((entry) => ({ position: entry.id, record: entry }));

  return {
    ...paged<RedisStreamEntry, StreamId>(async function* (after, { signal, follow }) {
      const link = await openRedis(options.url);
      // Following, reads block on `link`: acknowledgements go through a connection of their own,
      // and a stop drops `link` so that a blocked read ends at once.
      live =
        follow && group !== undefined
          ? await openRedis(options.url).catch(async (error: unknown) => {
              await link.close();
              throw error;
            })
          : link;
      const drop = () => link.destroy();
      signal.addEventListener('abort', drop, { once: true });
      const block = follow ? ['BLOCK', String(blockMs)] : [];
      try {
        const [newest] = toEntries(await link.send(['XREVRANGE', stream, '+', '-', 'COUNT', '1']));
        const head = follow ? '+' : newest?.id;
        let last: StreamId = after ?? '0-0';
        const caughtUp = () => !follow && (head === undefined || compareStreamIds(last, head) >= 0);
        if (group === undefined) {
          while (!caughtUp() && !signal.aborted) {
            const entries = readReplyEntries(await link.send(['XREAD', 'COUNT', String(count), ...block, 'STREAMS', stream, last]));
            if (entries.length === 0) {
              if (follow) continue;
              return;
            }
            last = (entries.at(-1) as RedisStreamEntry).id;
            yield items(entries);
          }
          return;
        }
        await createGroup(link, stream, group, after ?? '0');
        // Whatever is pending in the group was delivered to a worker that is gone (the lease says so).
        const pending = await claimAll(link, stream, group, consumer);
        const covered = pending.filter((entry) => after !== undefined && compareStreamIds(entry.id, after) <= 0);
        if (covered.length > 0) await ack(link, idsOf(covered));
        const redo = pending.filter((entry) => after === undefined || compareStreamIds(entry.id, after) > 0);
        if (redo.length > 0) {
          unacked.push(...idsOf(redo));
          last = (redo.at(-1) as RedisStreamEntry).id;
          yield items(redo);
        }
        while (!caughtUp() && !signal.aborted) {
          const delivered = readReplyEntries(
            await link.send(['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(count), ...block, 'STREAMS', stream, '>']),
          );
          // A group behind the checkpoint (created again, or moved back) delivers entries already
          // done, acknowledged at once, and entries this read already took from the stream, now
          // pending here until their checkpoint commits.
          const done = delivered.filter((entry) => after !== undefined && compareStreamIds(entry.id, after) <= 0);
          if (done.length > 0) await ack(link, idsOf(done));
          const taken = delivered.filter((entry) => !done.includes(entry) && compareStreamIds(entry.id, last) <= 0);
          if (taken.length > 0) unacked.push(...idsOf(taken));
          unacked.sort(compareStreamIds);
          const fresh = delivered.filter((entry) => compareStreamIds(entry.id, last) > 0);
          if (fresh.length === 0 && delivered.length > 0) continue;
          // The stream is the truth: its span from the last entry read is read whole, whoever the
          // group gave parts of it to (a worker that lost its lease can still have taken some).
          const until = fresh.at(-1)?.id ?? (head as StreamId);
          const span = toEntries(await link.send(['XRANGE', stream, `(${last}`, until, ...(fresh.length === 0 ? ['COUNT', String(count)] : [])]));
          if (span.length === 0) {
            if (follow) continue;
            return;
          }
          const page = span.length === fresh.length ? fresh : await takeMissing(link, { stream, group, consumer }, span, fresh);
          unacked.push(...idsOf(page));
          last = (page.at(-1) as RedisStreamEntry).id;
          yield items(page);
        }
      } catch (error) {
        // The stop dropped the connection under a blocked read: that is the end, not a failure.
        if (!signal.aborted) throw notAStream(error, stream);
      } finally {
        signal.removeEventListener('abort', drop);
        if (live !== link) await live?.close();
        live = undefined;
        await link.close();
      }
    }),

    /**
     * The stream's identity: a consumer group `ckpt-identity` created on first use, whose last
     * delivered ID (`0-<random>`) is the token. It dies with the stream, so a stream dropped and
     * created again has a new token (drift, exit 4); trimming (MAXLEN, MINID, XDEL) keeps it.
     */
    async fingerprint() {
      const link = await openRedis(options.url);
      try {
        try {
          const token = `0-${randomInt(1, 2 ** 47)}`;
          await link.send(['XGROUP', 'CREATE', stream, IDENTITY_GROUP, token, 'MKSTREAM']);
          return `redis:${stream}:${token}`;
        } catch (error) {
          if (!isRedisError(error, 'BUSYGROUP')) throw notAStream(error, stream);
        }
        const groups = (await link.send(['XINFO', 'GROUPS', stream])) as unknown[];
        const identity = groups.map(toRecord).find((info) => info.name === IDENTITY_GROUP);
        return `redis:${stream}:${String(identity?.['last-delivered-id'])}`;
      } finally {
        await link.close();
      }
    },

    /** Entries after `position` (counted up to 10,000), and the time between its ID and the newest one's. */
    async behind(position) {
      const link = await openRedis(options.url);
      try {
        const [newest] = toEntries(await link.send(['XREVRANGE', stream, '+', '-', 'COUNT', '1']));
        if (newest === undefined || (position !== undefined && compareStreamIds(newest.id, position) <= 0)) return { records: 0, ms: 0 };
        const after = toEntries(await link.send(['XRANGE', stream, position === undefined ? '-' : `(${position}`, newest.id, 'COUNT', '10000']));
        const ms = (id: StreamId) => Number(id.split('-')[0]);
        return { records: after.length, ms: position === undefined ? 0 : Math.max(0, ms(newest.id) - ms(position)) };
      } finally {
        await link.close();
      }
    },

    async committed(position) {
      if (group === undefined) return;
      let through = 0;
      while (through < unacked.length && compareStreamIds(unacked[through] as StreamId, position) <= 0) through++;
      if (through === 0) return;
      const ids = unacked.splice(0, through);
      // The last checkpoint commits after the read has closed its connection.
      if (live !== undefined) return ack(live, ids);
      const link = await openRedis(options.url);
      try {
        await ack(link, ids);
      } finally {
        await link.close();
      }
    },
  };
}

/** A key that holds another type (a string, a list): the job names the wrong key, exit 2, not a failed run to retry. */
function notAStream(error: unknown, stream: string): unknown {
  if (!isRedisError(error, 'WRONGTYPE')) return error;
  return new UsageError(`redisStream: the key ${JSON.stringify(stream)} holds something other than a stream; give the key of a stream (TYPE says stream)`, {
    cause: error,
  });
}

function idsOf(entries: readonly RedisStreamEntry[]): StreamId[] {
  return entries.map((entry) => entry.id);
}

async function createGroup(link: RedisLink, stream: string, group: string, from: StreamId): Promise<void> {
  try {
    await link.send(['XGROUP', 'CREATE', stream, group, from, 'MKSTREAM']);
  } catch (error) {
    if (!isRedisError(error, 'BUSYGROUP')) throw error;
  }
}

/** Every entry pending in the group, whoever it was delivered to, now pending with `consumer`, in ID order. */
async function claimAll(link: RedisLink, stream: string, group: string, consumer: string): Promise<RedisStreamEntry[]> {
  const claimed: RedisStreamEntry[] = [];
  let cursor = '0-0';
  do {
    const reply = (await link.send(['XAUTOCLAIM', stream, group, consumer, '0', cursor, 'COUNT', '1000'])) as unknown[];
    cursor = String(reply[0]);
    claimed.push(...toEntries(reply[1]));
  } while (cursor !== '0-0');
  return claimed.sort((a, b) => compareStreamIds(a.id, b.id));
}

/** The page's whole span: entries another consumer of the group was given meanwhile are claimed here. */
async function takeMissing(
  link: RedisLink,
  where: { stream: string; group: string; consumer: string },
  span: RedisStreamEntry[],
  delivered: RedisStreamEntry[],
): Promise<RedisStreamEntry[]> {
  const mine = new Set(delivered.map((entry) => entry.id));
  const missing = span.filter((entry) => !mine.has(entry.id)).map((entry) => entry.id);
  // Claims only what is pending elsewhere; an entry pending nowhere is still read: the stream is the truth.
  if (missing.length > 0) await link.send(['XCLAIM', where.stream, where.group, where.consumer, '0', ...missing, 'JUSTID']);
  return span;
}
