// Export the evidence of a quarterly access review: for every business unit, one row per user
// with the entitlements they hold, written through ctx.tx. One shard per unit, so units resume
// independently (and several workers on PostgreSQL can split them); each evidence row commits in
// the same transaction as the checkpoint that covers it, so after any crash there is exactly one
// row per (unit, user), none missing, none doubled: what an auditor asks for.
//
//   ckpt run examples/access-review-export.ts --param review=2026-Q4
//   ckpt chaos examples/access-review-export.ts --kills 25
//
// The evidence table lives in the store's own database (that is what ctx.tx writes to). The
// users and entitlements come from a deterministic stand-in for the identity provider.
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, fromArray } from 'checkpointed';
import type { ChaosCheckInput } from 'checkpointed/types';

type Params = { review: string; units: string[]; usersPerUnit: number; delayMs: number };
type Grant = { user: string; entitlements: string[] };

const ROLES = ['reader', 'writer', 'approver', 'admin', 'auditor', 'billing'];

/** The unit's users and what each may do: the same every time for the same review and unit. */
function usersOf(unit: string, count: number): Grant[] {
  let seed = [...unit].reduce((hash, char) => (hash * 31 + char.charCodeAt(0)) >>> 0, 17);
  const next = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  return Array.from({ length: count }, (_, index) => ({
    user: `${unit}-user-${String(index + 1).padStart(3, '0')}`,
    entitlements: ROLES.filter(() => next() < 0.35),
  }));
}

let tableReady = false;

export default defineJob<Grant, Params>({
  name: 'access-review-export',
  version: '1',
  params: (raw) => {
    const review = raw.review ?? '2026-Q4';
    if (!/^\d{4}-Q[1-4]$/.test(review)) throw new Error(`review must look like 2026-Q4 (got ${JSON.stringify(review)})`);
    const units = (raw.units ?? 'finance,engineering,sales,support,hr').split(',').filter((unit) => unit !== '');
    if (units.some((unit) => !/^[a-z][a-z0-9-]*$/.test(unit)))
      throw new Error(`units must be lowercase names separated by commas (got ${JSON.stringify(raw.units)})`);
    const usersPerUnit = Number(raw.usersPerUnit ?? 80);
    if (!Number.isSafeInteger(usersPerUnit) || usersPerUnit < 1)
      throw new Error(`usersPerUnit must be a whole number ≥ 1 (got ${JSON.stringify(raw.usersPerUnit)})`);
    const delayMs = Number(raw.delayMs ?? 5);
    if (!(delayMs >= 0)) throw new Error(`delayMs must be a number ≥ 0 (got ${JSON.stringify(raw.delayMs)})`);
    return { review, units, usersPerUnit, delayMs };
  },
  shards: ({ params }) => params.units,
  source: ({ params, shard }) => fromArray(usersOf(shard, params.usersPerUnit)),
  checkpoint: { every: 10 },
  async process(grant, ctx) {
    // Reading the user's grants from the identity provider takes a moment.
    if (ctx.params.delayMs > 0) await sleep(ctx.params.delayMs);
    const postgres = ctx.tx.dialect === 'postgres';
    if (!tableReady) {
      await ctx.tx.query(
        'CREATE TABLE IF NOT EXISTS access_review_evidence (review TEXT NOT NULL, unit TEXT NOT NULL, username TEXT NOT NULL, entitlements TEXT NOT NULL, exported_at BIGINT NOT NULL)',
      );
      tableReady = true;
    }
    await ctx.tx.query(
      postgres
        ? 'INSERT INTO access_review_evidence (review, unit, username, entitlements, exported_at) VALUES ($1, $2, $3, $4, $5)'
        : 'INSERT INTO access_review_evidence (review, unit, username, entitlements, exported_at) VALUES (?, ?, ?, ?, ?)',
      [ctx.params.review, ctx.shard, grant.user, grant.entitlements.join(' '), Date.now()],
    );
  },
});

/** Checked by `ckpt chaos` once the job has completed: exactly one evidence row per (unit, user), none missing. */
export function invariant({ params, store }: ChaosCheckInput): string | undefined {
  const { review, units, usersPerUnit } = params as Params;
  if (!store.startsWith('sqlite:')) return `this check reads a SQLite store; got ${store}`;
  const db = new DatabaseSync(store.slice('sqlite:'.length), { readOnly: true });
  try {
    const rows = db.prepare('SELECT unit, username, entitlements FROM access_review_evidence WHERE review = ?').all(review) as {
      unit: string;
      username: string;
      entitlements: string;
    }[];
    const seen = new Map<string, number>();
    for (const row of rows) seen.set(`${row.unit}/${row.username}`, (seen.get(`${row.unit}/${row.username}`) ?? 0) + 1);
    for (const unit of units) {
      for (const grant of usersOf(unit, usersPerUnit)) {
        const copies = seen.get(`${unit}/${grant.user}`) ?? 0;
        if (copies !== 1) return `${unit}/${grant.user} has ${copies} evidence rows (exactly 1 expected)`;
      }
    }
    if (rows.length !== units.length * usersPerUnit) return `${rows.length} evidence rows for ${units.length * usersPerUnit} (unit, user) pairs`;
    return undefined;
  } finally {
    db.close();
  }
}
