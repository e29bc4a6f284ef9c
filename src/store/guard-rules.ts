import type { JsonObject } from '../json.ts';
import type { ApprovalInfo, ApprovalOutcome, EffectLimit, HoldInfo, JournalOutcome, JournalWrite, NewApproval, NewEvent } from './store-types.ts';

// The decisions behind effect limits and approvals, written once: each backend reads the rows
// under its locks, asks these, and writes what they answer in the same transaction.

/** A limit's counter row as the batch's transaction read it (locked). */
export interface LimitCounter {
  used: number;
  raised: number;
}

/** How a counter is named in the maps below. */
export function counterKey(limit: Pick<EffectLimit, 'generation' | 'kind'>): string {
  return `${limit.generation}:${limit.kind}`;
}

/** The limited writes of a batch: the ones whose counters must be read (and locked) first. */
export function limitedWrites(writes: readonly JournalWrite[]): (JournalWrite & { limit: EffectLimit })[] {
  return writes.filter((write): write is JournalWrite & { limit: EffectLimit } => 'limit' in write && write.limit !== undefined);
}

/**
 * Counts a batch's limited claims against their counters, in the writes' order: a claim of a key
 * that has no entry yet (`hasIntent` false, for a claim) takes one if `used < max + raised`, else
 * it is refused (JournalLimited: dropped from the batch, events and all, so its `fn` never runs);
 * a claim of a key that has an entry counts nothing (it was counted when first claimed). A
 * `failed` over an intent (`hasIntent` true) gives its one back: the effect did not happen.
 * `counters` are the locked rows (absent: zero). Answers the writes to apply, the outcomes mapped
 * back to the whole batch, and each counter's new `used`.
 */
export function applyLimits(
  writes: readonly JournalWrite[],
  counters: ReadonlyMap<string, LimitCounter>,
  hasIntent: (write: JournalWrite & { key: string }) => boolean,
): { writes: JournalWrite[]; outcomes: (applied: readonly JournalOutcome[]) => JournalOutcome[]; used: Map<string, number> } {
  const used = new Map<string, number>();
  const kept: JournalWrite[] = [];
  const answers: (JournalOutcome | number)[] = [];
  for (const write of writes) {
    const limit = 'limit' in write ? write.limit : undefined;
    if (limit === undefined || write.kind === 'intent' || write.kind === 'done' || write.kind === 'events') {
      answers.push(kept.push(write) - 1);
      continue;
    }
    const key = counterKey(limit);
    const counter = counters.get(key) ?? { used: 0, raised: 0 };
    const now = used.get(key) ?? counter.used;
    if (write.kind === 'failed') {
      if (hasIntent(write)) used.set(key, Math.max(0, now - 1));
      answers.push(kept.push(write) - 1);
      continue;
    }
    if (hasIntent(write)) {
      answers.push(kept.push(write) - 1);
      continue;
    }
    if (now >= limit.max + counter.raised) {
      answers.push({ limited: { kind: limit.kind, used: now, max: limit.max, raised: counter.raised } });
      continue;
    }
    used.set(key, now + 1);
    answers.push(kept.push(write) - 1);
  }
  return {
    writes: kept,
    outcomes: (applied) => answers.map((answer) => (typeof answer === 'number' ? applied[answer] : answer)),
    used,
  };
}

/** What `approve` must write, decided from the hold as locked and its round's approvals. */
export type ApprovalDecision =
  | { refuse: Exclude<ApprovalOutcome, { outcome: 'recorded' }> }
  | { refuse?: undefined; release: boolean; raise: number | null; events: NewEvent[] };

/**
 * An approval of `hold` (open, or refused): one name approves a round once; a limit's raise is
 * set by its round's first approval and every later one must name the same (or none: seconding
 * it); the approval that brings `required` distinct names releases the hold. The events record
 * the approval (who, which OS user, why, what) and the release.
 */
export function decideApproval(hold: HoldInfo | undefined, open: HoldInfo[], approval: NewApproval, at: number): ApprovalDecision {
  if (hold === undefined || hold.releasedAt !== null) return { refuse: { outcome: 'not-held', holds: open } };
  if (hold.approvals.some((given) => given.by === approval.by)) return { refuse: { outcome: 'already-approved', hold } };
  const pending = hold.approvals.find((given) => given.raise !== null)?.raise ?? null;
  const raise = approval.raise ?? pending;
  if (pending !== null && approval.raise !== null && approval.raise !== pending) return { refuse: { outcome: 'other-raise', hold, pending } };
  const approvers = [...hold.approvals.map((given) => given.by), approval.by];
  const release = approvers.length >= hold.required;
  const base = { name: hold.name, round: hold.round };
  const events: NewEvent[] = [
    {
      type: 'guard:approved',
      at,
      data: {
        ...base,
        by: approval.by,
        osUser: approval.osUser,
        reason: approval.reason,
        raise: approval.raise,
        approvals: approvers.length,
        required: hold.required,
      },
    },
  ];
  if (release) events.push({ type: 'guard:released', at, data: { ...base, raise, approvers } });
  return { release, raise, events };
}

type Row = Record<string, unknown>;

/** A stored approval row as ApprovalInfo (every backend names the columns alike). */
export function toApproval(row: Row): ApprovalInfo {
  return {
    by: String(row.by_name),
    osUser: row.os_user === null || row.os_user === undefined ? null : String(row.os_user),
    reason: String(row.reason),
    raise: row.raise_by === null || row.raise_by === undefined ? null : Number(row.raise_by),
    at: Number(row.at),
  };
}

/** A stored hold row, with its current round's approvals (rows of any round: the others are dropped). */
export function toHold(row: Row, approvals: readonly Row[]): HoldInfo {
  const round = Number(row.round);
  return {
    instanceId: Number(row.instance_id),
    generation: Number(row.generation),
    name: String(row.name),
    kind: row.kind === 'point' ? 'point' : 'limit',
    detail: JSON.parse(String(row.detail)) as JsonObject,
    required: Number(row.required),
    round,
    heldAt: Number(row.held_at),
    releasedAt: row.released_at === null || row.released_at === undefined ? null : Number(row.released_at),
    approvals: approvals
      .filter((approval) => String(approval.name) === String(row.name) && Number(approval.round) === round)
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map(toApproval),
  };
}
