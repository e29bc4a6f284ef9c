import type { EventMap } from '../events.ts';
import type { GenerationEvent } from './audit-chain.ts';
import type { EffectEntry, JournalFence, JournalOutcome, JournalWrite, NewEvent } from './store-types.ts';

/** The shard row as a journal batch's transaction reads it: its fencing token and the run holding it. */
export interface ShardHolder {
  token: number;
  runId: number | null;
}

/** The shard row (lease_token, run_id) as a batch reads it; undefined: the row is gone. */
export function toHolder(row: { [column: string]: unknown } | undefined): ShardHolder | undefined {
  return row === undefined ? undefined : { token: Number(row.lease_token), runId: row.run_id === null ? null : Number(row.run_id) };
}

/** True when the batch's lease no longer holds the shard (its row gone counts as taken). */
export function isStale(fence: JournalFence | undefined, holder: ShardHolder | undefined): fence is JournalFence {
  return fence !== undefined && (holder === undefined || holder.token !== fence.token);
}

export type DoneWrite = Extract<JournalWrite, { kind: 'done' }>;

/** A write that names an effect key (all but an events-only write). */
export type KeyedWrite = Extract<JournalWrite, { key: string }>;

/** The writes of a batch of one kind (a claim, intent or forgotten intent: each names a key), in their order. */
export function writesOf(writes: readonly JournalWrite[], kind: Exclude<KeyedWrite['kind'], 'done'>): KeyedWrite[] {
  return writes.filter((write): write is KeyedWrite => write.kind === kind);
}

/** The run a claim or an intent records as its writer (EffectEntry.runId); null for other writes, or none given. */
export function writerOf(write: JournalWrite): number | null {
  return (write.kind === 'claim' || write.kind === 'intent') && write.runId !== undefined ? write.runId : null;
}

/** The intents of a batch written over an in-doubt entry (`over`): whose entries movedIntents must be shown. */
export function intentsOver(writes: readonly JournalWrite[]): KeyedWrite[] {
  return writes.filter((write): write is KeyedWrite => write.kind === 'intent' && write.over !== undefined);
}

/**
 * The intents of a batch that another run got to first: written `over` an in-doubt entry that the
 * key no longer has (`entries`, read under the batch's write lock: done, forgotten and claimed
 * again, or started over by another run that settled it too). By index in `writes`, the entry the
 * key has now: such a write is not written, and its caller claims the key again (so it waits for
 * the run that started it, instead of running the effect a second time). A key with no entry is
 * written as usual.
 */
export function movedIntents(writes: readonly JournalWrite[], entries: ReadonlyMap<string, EffectEntry>): Map<number, EffectEntry> {
  const moved = new Map<number, EffectEntry>();
  writes.forEach((write, i) => {
    const entry = 'key' in write ? entries.get(entryKey(write.scope.generation, write.key)) : undefined;
    if (entry !== undefined && intentMoved(write, entry)) moved.set(i, entry);
  });
  return moved;
}

/** movedIntents for one write and its key's entry (undefined: none): whether that entry is no longer the one it was written `over`. */
export function intentMoved(write: JournalWrite, entry: EffectEntry | undefined): entry is EffectEntry {
  if (write.kind !== 'intent' || write.over === undefined || entry === undefined) return false;
  return entry.status !== 'intent' || entry.attempts !== write.over.attempts || entry.runId !== write.over.runId;
}

/** The completions of a batch: the writes whose entries fenceBatch must be shown. */
export function completions(writes: readonly JournalWrite[]): DoneWrite[] {
  return writes.filter((write): write is DoneWrite => write.kind === 'done');
}

/** How fenceBatch's `entries` are keyed. */
export function entryKey(generation: number, key: string): string {
  return `${generation}:${key}`;
}

/**
 * What a batch written under a stale fencing token may still write: its lease was taken while
 * its records ran, so another worker may be running the same keys.
 * - a claim, an intent or a forgotten intent is refused: nothing of it is written (not its
 *   events), and its caller starts no `fn` (a forgotten intent stays in doubt for the holder);
 * - a completion never overwrites another's: if the key is already `done`, the first result
 *   stays and only an `effect:late-completion` event (kept: first) is written; if the key is an
 *   intent (this worker's, or the holder's, still running) or has no entry, the completion is
 *   recorded with that event (kept: late): the effect did happen, and a result on record keeps
 *   the holder from running it blindly again, while the holder's own completion, written with a
 *   current token, replaces it if the holder ran it too (the holder's result is the one its
 *   checkpoint commits with);
 * - an events-only write is kept: it decides nothing.
 * `entries`: the batch's completed keys' entries (entryKey). Answers the writes to apply as
 * usual, and how to map their outcomes back to one per write of the batch.
 */
export function fenceBatch(
  writes: readonly JournalWrite[],
  fence: JournalFence,
  holder: ShardHolder | undefined,
  entries: ReadonlyMap<string, EffectEntry>,
): { writes: JournalWrite[]; outcomes: (applied: readonly JournalOutcome[]) => JournalOutcome[] } {
  const holderRunId = holder?.runId ?? null;
  const kept: JournalWrite[] = [];
  const answers: (JournalOutcome | number)[] = [];
  for (const write of writes) {
    if (write.kind === 'events') {
      answers.push(kept.push(write) - 1);
      continue;
    }
    if (write.kind !== 'done') {
      answers.push({ fenced: 'refused', holderRunId });
      continue;
    }
    const first = entries.get(entryKey(write.scope.generation, write.key))?.status === 'done';
    const data: EventMap['effect:late-completion'] = { shard: fence.shard, key: write.key, runId: fence.runId, holderRunId, kept: first ? 'first' : 'late' };
    const late: NewEvent = { type: 'effect:late-completion', at: Date.now(), runId: fence.runId, shard: fence.shard, data: { ...data } };
    kept.push(first ? { kind: 'events', scope: write.scope, events: [late] } : { ...write, events: [...write.events, late] });
    answers.push({ fenced: 'late', holderRunId, kept: data.kept });
  }
  return {
    writes: kept,
    outcomes: (applied) => answers.map((answer) => (typeof answer === 'number' ? applied[answer] : answer)),
  };
}

/**
 * Whether a batch may go a server journal's fast way: no intent written again (a retry reads
 * its entry's attempts) and no limited claim (counted under its counter's row lock, the locked
 * way).
 */
export function fastEligible(writes: readonly JournalWrite[]): boolean {
  return writes.every((write) => write.kind !== 'intent' && !('limit' in write && write.limit !== undefined));
}

/**
 * The events a batch records, in its order, each with its write's generation. `outcomes` (one per
 * write, once written): a claim that found an entry wrote nothing, so it records nothing either.
 */
export function batchEvents(writes: readonly JournalWrite[], outcomes?: readonly JournalOutcome[]): GenerationEvent[] {
  return writes.flatMap((write, i) =>
    outcomes === undefined || outcomes[i] === undefined ? write.events.map((event) => ({ generation: write.scope.generation, event })) : [],
  );
}
