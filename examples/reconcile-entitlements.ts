// Nightly entitlement reconciliation, one shard per tenant. For every (user, entitlement) of a
// tenant, the desired state (from the HR/policy source) is compared with the actual one in a
// small local "directory" table, and the difference is granted or revoked through ctx.tx: the
// grant or revoke, its audit row and the checkpoint that covers it commit together, so a crash
// never leaves a change applied without its record, nor a record done without its change.
//
//   ckpt run examples/reconcile-entitlements.ts                       # SQLite, one process
//   ckpt run examples/reconcile-entitlements.ts --store postgres://…  # run it on N machines at once
//   ckpt run examples/reconcile-entitlements.ts --param tenants=50 --param users=200
//
// The first record of each tenant creates the demo directory and seeds the tenant's "actual"
// state (a deterministic mix of right, missing and stale entitlements).
import { defineJob, fromArray, type JobContext } from 'checkpointed';

const entitlements = ['read', 'write', 'admin', 'billing', 'audit'] as const;

interface Desired {
  user: string;
  entitlement: string;
  /** Should the user hold it? */
  wanted: boolean;
}
type Params = { tenants: number; users: number; latencyMs: number };
type Tally = { seeded: boolean; granted: number; revoked: number; unchanged: number };

/** A stable pseudo-random bit per (tenant, user, entitlement, salt): the demo's policy and its drift. */
function bit(...parts: string[]): boolean {
  let hash = 2166136261;
  for (const char of parts.join('|')) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
  hash = Math.imul(hash ^ (hash >>> 15), 2246822507) >>> 0; // mix, so the high bits depend on every char
  return ((hash >>> 16) & 1) === 1;
}

const tenantName = (index: number) => `tenant-${String(index).padStart(3, '0')}`;
const userName = (index: number) => `user-${String(index).padStart(4, '0')}`;

/** What policy says each user of the tenant should hold, one record per (user, entitlement). */
export function desiredEntitlements(tenant: string, users: number): Desired[] {
  const records: Desired[] = [];
  for (let index = 0; index < users; index++) {
    for (const entitlement of entitlements) records.push({ user: userName(index), entitlement, wanted: bit(tenant, userName(index), entitlement, 'policy') });
  }
  return records;
}

/** What the directory holds before the first run: about half of it disagrees with policy. */
export function initialEntitlements(tenant: string, users: number): { user: string; entitlement: string }[] {
  return desiredEntitlements(tenant, users)
    .filter((record) => (bit(tenant, record.user, record.entitlement, 'drift') ? !record.wanted : record.wanted))
    .map(({ user, entitlement }) => ({ user, entitlement }));
}

type Ctx = JobContext<Params, Tally>;

/** `?` placeholders, numbered for PostgreSQL. */
function sql(ctx: Ctx, text: string): string {
  let n = 0;
  return ctx.tx.dialect === 'postgres' ? text.replace(/\?/g, () => `$${++n}`) : text;
}

async function setUpDirectory(ctx: Ctx): Promise<void> {
  const { tx } = ctx;
  // Workers start tenants at the same moment: on PostgreSQL one creates the tables, the others wait.
  if (tx.dialect === 'postgres') await tx.query("SELECT pg_advisory_xact_lock(hashtext('reconcile-entitlements:setup'))");
  await tx.query(
    'CREATE TABLE IF NOT EXISTS directory_entitlements (tenant TEXT NOT NULL, user_id TEXT NOT NULL, entitlement TEXT NOT NULL, PRIMARY KEY (tenant, user_id, entitlement))',
  );
  // The audit trail of every change; no unique key, so a change applied twice would show twice.
  await tx.query(
    'CREATE TABLE IF NOT EXISTS entitlement_changes (tenant TEXT NOT NULL, user_id TEXT NOT NULL, entitlement TEXT NOT NULL, action TEXT NOT NULL)',
  );
  await tx.query('CREATE TABLE IF NOT EXISTS directory_tenants (tenant TEXT PRIMARY KEY)');
  const seeded = await tx.query(sql(ctx, 'INSERT INTO directory_tenants (tenant) VALUES (?) ON CONFLICT (tenant) DO NOTHING'), [ctx.shard]);
  if (seeded.rowCount === 0) return; // an earlier run of this tenant seeded it
  for (const { user, entitlement } of initialEntitlements(ctx.shard, ctx.params.users)) {
    await tx.query(sql(ctx, 'INSERT INTO directory_entitlements (tenant, user_id, entitlement) VALUES (?, ?, ?)'), [ctx.shard, user, entitlement]);
  }
}

export default defineJob<Desired, Params, Tally, number>({
  name: 'reconcile-entitlements',
  version: '1',
  params: (raw) => {
    const whole = (name: string, fallback: number, min: number) => {
      const value = Number(raw[name] ?? fallback);
      if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be a whole number ≥ ${min} (got ${JSON.stringify(raw[name])})`);
      return value;
    };
    return { tenants: whole('tenants', 8, 1), users: whole('users', 40, 1), latencyMs: whole('latencyMs', 0, 0) };
  },
  shards: ({ params }) => Array.from({ length: params.tenants }, (_, index) => tenantName(index)),
  source: ({ params, shard }) => fromArray(desiredEntitlements(shard, params.users)),
  initialState: () => ({ seeded: false, granted: 0, revoked: 0, unchanged: 0 }),
  checkpoint: { every: 25 },
  async process(desired, ctx) {
    const tally = ctx.state;
    if (!tally.seeded) {
      await setUpDirectory(ctx);
      tally.seeded = true;
    }
    // Stands for the latency of a real directory (LDAP, SCIM, an IdP API).
    if (ctx.params.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, ctx.params.latencyMs));
    const key = [ctx.shard, desired.user, desired.entitlement];
    const held = await ctx.tx.query(sql(ctx, 'SELECT 1 FROM directory_entitlements WHERE tenant = ? AND user_id = ? AND entitlement = ?'), key);
    const has = held.rows.length > 0;
    if (desired.wanted && !has) {
      await ctx.tx.query(sql(ctx, 'INSERT INTO directory_entitlements (tenant, user_id, entitlement) VALUES (?, ?, ?)'), key);
      await ctx.tx.query(sql(ctx, "INSERT INTO entitlement_changes (tenant, user_id, entitlement, action) VALUES (?, ?, ?, 'grant')"), key);
      tally.granted++;
    } else if (!desired.wanted && has) {
      await ctx.tx.query(sql(ctx, 'DELETE FROM directory_entitlements WHERE tenant = ? AND user_id = ? AND entitlement = ?'), key);
      await ctx.tx.query(sql(ctx, "INSERT INTO entitlement_changes (tenant, user_id, entitlement, action) VALUES (?, ?, ?, 'revoke')"), key);
      tally.revoked++;
    } else tally.unchanged++;
  },
});
