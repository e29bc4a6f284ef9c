import { createHmac, hash } from 'node:crypto';
import type { ChainHead, ChainLink, NewEvent, StoredEvent } from './store-types.ts';

/** What reading a chain needs of a store. */
interface ChainSource {
  chainHead(instanceId: number): Promise<ChainHead | undefined>;
  listEvents(instanceId: number, options?: { afterId?: number; limit?: number }): Promise<StoredEvent[]>;
}

const EVENT_BATCH = 20_000;

/**
 * An instance's chain as one consistent snapshot, while a job may be appending to it: the head
 * first (every event up to it is committed with it, so the log read next holds them all), then
 * the log; if the head moved meanwhile, the events past the first head are left out rather than
 * taken for rows the head does not cover (which `verifyChain` would report as tampering).
 */
export async function readChain(store: ChainSource, instanceId: number): Promise<{ head: ChainHead | undefined; events: StoredEvent[] }> {
  const head = await store.chainHead(instanceId);
  const events: StoredEvent[] = [];
  for (let afterId = 0; ; ) {
    const batch = await store.listEvents(instanceId, { afterId, limit: EVENT_BATCH });
    events.push(...batch);
    if (batch.length < EVENT_BATCH) break;
    afterId = (batch.at(-1) as StoredEvent).id;
  }
  const now = await store.chainHead(instanceId);
  if (now?.seq !== head?.seq || now?.hash !== head?.hash) {
    const covered = head?.seq ?? 0;
    while (events.length > 0 && (events.at(-1)?.chain?.seq ?? 0) > covered) events.pop();
  }
  return { head, events };
}

// The event log of an instance is one hash chain: each stored event carries its place in the
// chain (`seq`, 1, 2, …, across generations) and the hash of the event before it, and its own
// hash covers both and every field shown. A deleted, edited or reordered row then breaks a link
// that `ckpt audit --verify` finds. With the store's secret key the hash is an HMAC, so whoever
// can write the store but lacks the key cannot rebuild a chain that verifies; without a key it is
// sha256, which catches mistakes and careless edits but not someone who recomputes the chain.
// Every backend calls `chainEvents` while it holds the instance's chain head (a row lock or the
// file's write lock), so concurrent writers still make one chain.

/** The `prevHash` of an instance's first event. */
export const GENESIS = '0'.repeat(64);

/** A stored event's own fields as the chain hashes them and a backend writes them: its data as JSON text. */
interface EventText extends Pick<StoredEvent, 'runId' | 'shard' | 'type' | 'at'> {
  data: string;
}

/** What a backend stores for one new event: the event, its data as JSON text, and its link. */
export interface ChainedRow extends EventText {
  link: ChainLink;
}

interface LinkFields extends EventText {
  instanceId: number;
  generation: number;
  seq: number;
  prevHash: string;
}

/** The hash of one link: HMAC-SHA256 with `key`, else SHA-256. */
export function linkHash(fields: LinkFields, key: Buffer | undefined): string {
  const text = JSON.stringify([
    fields.instanceId,
    fields.seq,
    fields.prevHash,
    fields.generation,
    fields.runId,
    fields.shard,
    fields.type,
    fields.at,
    fields.data,
  ]);
  // crypto.hash: one call, no Hash object (a journal batch hashes an event per write).
  return key === undefined ? hash('sha256', text, 'hex') : createHmac('sha256', key).update(text).digest('hex');
}

/** Links `events` after `head` (undefined: the chain starts here); the rows to store and the new head. */
export function chainEvents(
  instanceId: number,
  generation: number,
  head: ChainHead | undefined,
  events: readonly NewEvent[],
  key: Buffer | undefined,
  clockOffsetMs = 0,
): { rows: ChainedRow[]; head: ChainHead } {
  const now = Date.now();
  let seq = head?.seq ?? 0;
  let prevHash = head?.hash ?? GENESIS;
  const rows = events.map((event): ChainedRow => {
    seq++;
    // Stamped on the store's clock: the worker's time moved by the offset its store measured
    // (a host whose clock is off must not date the audit trail; see Store clocks in DESIGN.md).
    const at = Math.round((event.at ?? now) + clockOffsetMs);
    const row = { runId: event.runId ?? null, shard: event.shard ?? null, type: event.type, at, data: JSON.stringify(event.data) };
    const hash = linkHash({ instanceId, generation, ...row, seq, prevHash }, key);
    const link = { seq, prevHash, hash, keyed: key !== undefined };
    prevHash = hash;
    return { ...row, link };
  });
  return { rows, head: { seq, hash: prevHash } };
}

/** An event of a journal batch, with the generation it is recorded under. */
export interface GenerationEvent {
  generation: number;
  event: NewEvent;
}

/** A journal batch's events linked: the rows to store, each with its generation, and the new head. */
export interface ChainedGenerations {
  rows: (ChainedRow & { generation: number })[];
  head: ChainHead;
}

/**
 * Links events of several generations of one instance (a journal batch: instance-scoped keys
 * live in generation 0, the run's own in its generation) after `head`, in the order given.
 */
export function chainGenerations(
  instanceId: number,
  head: ChainHead | undefined,
  events: readonly GenerationEvent[],
  key: Buffer | undefined,
  clockOffsetMs = 0,
): ChainedGenerations {
  let at = head;
  const rows = events.map(({ generation, event }) => {
    const chained = chainEvents(instanceId, generation, at, [event], key, clockOffsetMs);
    at = chained.head;
    return { ...(chained.rows[0] as ChainedRow), generation };
  });
  return { rows, head: at ?? { seq: 0, hash: GENESIS } };
}

/**
 * Whether `key` (undefined: none) may link after `last`, an instance's last stored event:
 * undefined if it may (no event, an unlinked or unkeyed one, or one keyed with `key`);
 * 'missing' if `last` is keyed and there is no key; 'other' if `key` does not verify it.
 */
export function keyMismatch(last: StoredEvent | undefined, key: Buffer | undefined): 'missing' | 'other' | undefined {
  const link = last?.chain;
  if (last === undefined || link === null || link === undefined || !link.keyed) return undefined;
  if (key === undefined) return 'missing';
  return linkHolds(last, link, key) ? undefined : 'other';
}

/** Whether a stored event's content, hashed again with `key` (undefined: plain SHA-256), gives its link's hash. */
function linkHolds(event: StoredEvent, link: ChainLink, key: Buffer | undefined): boolean {
  return linkHash({ ...event, data: JSON.stringify(event.data), seq: link.seq, prevHash: link.prevHash }, key) === link.hash;
}

export type ChainReport =
  | { ok: true; events: number; chained: number; keyed: number; legacy: number; head: ChainHead | undefined }
  | { ok: false; event: StoredEvent | undefined; problem: string; needsKey?: boolean };

/**
 * Check an instance's events (in the order the store keeps them: by id) against their links and
 * the chain head. The first problem found is reported with the event it was found at.
 */
export function verifyChain(events: readonly StoredEvent[], head: ChainHead | undefined, key: Buffer | undefined): ChainReport {
  const seqs = new Set(events.flatMap((event) => (event.chain === null ? [] : [event.chain.seq])));
  let previous: StoredEvent | undefined;
  let keyedSeen = false;
  let legacy = 0;
  let chained = 0;
  let keyed = 0;
  for (const event of events) {
    const link = event.chain;
    if (link === null) {
      // Written before this store had an audit chain (an upgraded store): shown, not covered.
      if (previous === undefined) {
        legacy++;
        continue;
      }
      return { ok: false, event, problem: 'it is not linked into the chain: added to the store by hand, or its link was erased' };
    }
    if (link.keyed && key === undefined) {
      return {
        ok: false,
        event,
        needsKey: true,
        problem: "it is keyed with the store's secret key, which is not available here: set CKPT_SECRET_KEY (or keep the <store>.key file beside the store)",
      };
    }
    const expectedSeq = (previous?.chain?.seq ?? 0) + 1;
    const expectedPrev = previous?.chain?.hash ?? GENESIS;
    if (!linkHolds(event, link, link.keyed ? key : undefined)) {
      return {
        ok: false,
        event,
        problem: 'its content does not match its hash: it was edited after it was written (or the secret key is not the one it was written with)',
      };
    }
    if (link.seq !== expectedSeq) {
      if (link.seq < expectedSeq || seqs.has(expectedSeq)) {
        return { ok: false, event, problem: `it is out of order: chain position ${link.seq} where ${expectedSeq} belongs (rows reordered)` };
      }
      const missing = link.seq - expectedSeq;
      return {
        ok: false,
        event,
        problem: `${missing === 1 ? 'the event' : `${missing} events`} before it (chain position ${missing === 1 ? expectedSeq : `${expectedSeq}–${link.seq - 1}`}) ${missing === 1 ? 'is' : 'are'} missing: deleted`,
      };
    }
    if (link.prevHash !== expectedPrev) {
      return { ok: false, event, problem: 'it does not link to the event before it: that event was replaced' };
    }
    if (key !== undefined && !link.keyed && keyedSeen) {
      return { ok: false, event, problem: 'it is not keyed although the events before it are: the chain was rebuilt from here without the secret key' };
    }
    keyedSeen ||= link.keyed;
    if (link.keyed) keyed++;
    chained++;
    previous = event;
  }
  const last = previous?.chain ?? undefined;
  if (head === undefined && last !== undefined) return { ok: false, event: previous, problem: "the chain's head record is missing: it was deleted" };
  if (head !== undefined && (last?.seq ?? 0) !== head.seq) {
    if ((last?.seq ?? 0) < head.seq) {
      const missing = head.seq - (last?.seq ?? 0);
      return {
        ok: false,
        event: previous,
        problem: `${missing === 1 ? 'the event' : `${missing} events`} after it ${missing === 1 ? 'is' : 'are'} missing: the chain's head is at position ${head.seq}, the log ends at ${last?.seq ?? 0} (deleted)`,
      };
    }
    return { ok: false, event: previous, problem: `the chain's head (position ${head.seq}) is behind the log: the head record was edited` };
  }
  if (head !== undefined && last !== undefined && head.hash !== last.hash) {
    return { ok: false, event: previous, problem: "the chain's head does not match the last event: one of them was replaced" };
  }
  return { ok: true, events: events.length, chained, keyed, legacy, head };
}
