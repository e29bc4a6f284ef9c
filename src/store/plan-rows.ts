import { redactJson } from '../redact.ts';
import type { NewPlan, PlanApproval, StoredPlan, TokenGrant } from './plan-types.ts';

// What every backend shares of plans and rate buckets: a plan is one row (its id, instance,
// hash, approvals and creation time as columns; the rest one JSON document), and a bucket's
// arithmetic. Kept here so the three stores cannot disagree on either.

/** A plan's id: the first 16 hex digits of its hash, so the same plan stored twice is one. */
export function planId(plan: Pick<NewPlan, 'hash'>): string {
  return plan.hash.slice(0, 16);
}

/** The JSON document a plan row keeps beside its columns. */
export function planBody(plan: NewPlan): string {
  const { instanceId: _instance, hash: _hash, ...body } = plan;
  return JSON.stringify(body);
}

/** A stored plan from its row (id, instance_id, hash, body, approvals, created_at). */
export function toStoredPlan(row: { [column: string]: unknown }): StoredPlan {
  const body = JSON.parse(String(row.body)) as Omit<NewPlan, 'instanceId' | 'hash'>;
  return {
    ...body,
    // A plan stored before secret-named params were redacted at store time shows them redacted too.
    params: redactJson(body.params) as StoredPlan['params'],
    id: String(row.id),
    instanceId: Number(row.instance_id),
    hash: String(row.hash),
    approvals: JSON.parse(String(row.approvals ?? '[]')) as PlanApproval[],
    createdAt: Number(row.created_at),
  };
}

/** The approvals after `approval`: one per approver name, the latest kept. */
export function withApproval(stored: unknown, approval: PlanApproval): string {
  const approvals = (JSON.parse(String(stored ?? '[]')) as PlanApproval[]).filter((earlier) => earlier.by !== approval.by);
  approvals.push(approval);
  return JSON.stringify(approvals);
}

/**
 * A take from the bucket whose row (tokens, updated_at) is `row` (none yet: undefined) at `now`:
 * what to write back and what to answer. What the SQLite and MySQL stores compute in JavaScript
 * under the bucket's lock (PostgreSQL: in its one statement, the same arithmetic).
 */
export function takeFromRow(
  row: { [column: string]: unknown } | undefined,
  now: number,
  perSecond: number,
  burst: number,
  want: number,
): { tokens: number; updatedAt: number; grant: TokenGrant } {
  const bucket = row === undefined ? undefined : { tokens: Number(row.tokens), updatedAt: Number(row.updated_at) };
  const next = takeFromBucket(bucket, now, perSecond, burst, want);
  return { tokens: next.tokens, updatedAt: next.updatedAt, grant: grantOf(next.granted, next.tokens, perSecond) };
}

/** Refill, then take: the arithmetic of every store's bucket. */
export function takeFromBucket(
  bucket: { tokens: number; updatedAt: number } | undefined,
  now: number,
  perSecond: number,
  burst: number,
  want: number,
): { tokens: number; updatedAt: number; granted: number } {
  const available = bucket === undefined ? burst : Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.updatedAt) * perSecond) / 1000);
  const granted = Math.max(0, Math.min(want, Math.floor(available)));
  return { tokens: available - granted, updatedAt: Math.max(now, bucket?.updatedAt ?? now), granted };
}

/** How long until a bucket left with `tokens` holds a whole one again. */
export function grantOf(granted: number, tokens: number, perSecond: number): TokenGrant {
  return { granted, waitMs: tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / perSecond) };
}
