// An entitlement change feed. The access-management database's `grants` table says who holds which
// entitlement; this job follows its changes through PostgreSQL logical replication (pgChanges) and
//   - keeps `actual_entitlements` on the store equal to it, through ctx.tx: each change and the
//     checkpoint that covers it commit together, so after any crash each is applied exactly once;
//   - revokes the access in the target system when a grant row is deleted, through ctx.once: a
//     revoke is sent once per grant, and one in doubt after a crash is asked about (`verify`),
//     never blindly sent again.
// The replication slot is moved only after the checkpoint commits, so a crash loses no change.
//
//   node examples/entitlement-changes.ts setup postgres://…/access          # grants, publication, slot
//   ckpt run examples/entitlement-changes.ts --param source=postgres://…/access --follow --every-ms 1000
//   node examples/entitlement-changes.ts change postgres://…/access 100     # grants added, moved, deleted
//   ckpt status --json                                                        # the follower's lag
//
// Without --follow a run applies what the slot holds and completes; the next run (incremental)
// goes on from there. The source server needs `wal_level = logical` and a role with REPLICATION
// (see the README). The target system here is a table of revoke calls in the source database
// (`access_revocations`), standing for an API. ENTITLEMENTS_DELAY_MS=N slows each change by N ms.
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, pgChanges } from 'checkpointed';
import type { PgChange } from 'checkpointed/types';

type Params = { source: string; slot: string };
type Querier = { query(sql: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>; end(): Promise<void> };

const delayMs = Number(process.env.ENTITLEMENTS_DELAY_MS ?? 0);

/** A pool on the source database: the target system's revoke calls go through it. */
async function openPool(url: string): Promise<Querier> {
  // pg is this example's driver, loaded when it runs.
  const specifier = 'pg';
  const pg = (await import(specifier)) as { default: { Pool: new (config: object) => Querier } };
  return new pg.default.Pool({ connectionString: url, max: 2, allowExitOnIdle: true });
}

let target: Promise<Querier> | undefined;
const targetSystem = (url: string) => {
  target ??= openPool(url);
  return target;
};

/**
 * The source side, once: the grants table, its publication, the target system's table, the slot.
 * The feed holds the changes made after this; grants already there need a first full load
 * (a reconciliation such as examples/incremental-reconcile.ts).
 */
export async function setupSource(url: string, slot = 'ckpt_entitlements'): Promise<void> {
  const db = await openPool(url);
  try {
    await db.query(`CREATE TABLE IF NOT EXISTS grants (
      id serial PRIMARY KEY, user_name text NOT NULL, entitlement text NOT NULL);
      ALTER TABLE grants REPLICA IDENTITY FULL;
      CREATE TABLE IF NOT EXISTS access_revocations (
        grant_id int PRIMARY KEY, user_name text NOT NULL, entitlement text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
    const { rowCount } = await db.query("SELECT 1 FROM pg_publication WHERE pubname = 'grants_pub'");
    if (rowCount === 0) await db.query('CREATE PUBLICATION grants_pub FOR TABLE grants');
    // The slot now (the job would create it on its first run): the feed holds every change from here.
    const slots = await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    if (slots.rowCount === 0) await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
  } finally {
    await db.end();
  }
}

/** A day's changes: `count` statements, each its own transaction; half grants, a quarter moved to another entitlement, a quarter revoked (deleted). */
export async function changeGrants(url: string, count: number): Promise<void> {
  const db = await openPool(url);
  try {
    for (let n = 0; n < count; n++) {
      const pick = n % 4;
      if (pick < 2) await db.query('INSERT INTO grants (user_name, entitlement) VALUES ($1, $2)', [`user${(n * 31) % 97}`, `app-${n % 7}:role-${n % 3}`]);
      else if (pick === 2) await db.query("UPDATE grants SET entitlement = entitlement || '+' WHERE id = (SELECT min(id) FROM grants)");
      else await db.query('DELETE FROM grants WHERE id = (SELECT max(id) FROM grants)');
    }
  } finally {
    await db.end();
  }
}

/** `?` placeholders, numbered for PostgreSQL. */
function sql(ctx: { tx: { dialect: string } }, text: string): string {
  let n = 0;
  return ctx.tx.dialect === 'postgres' ? text.replace(/\?/g, () => `$${++n}`) : text;
}

export default defineJob<PgChange, Params>({
  name: 'entitlement-changes',
  version: '1',
  // A run without --follow applies what is there and completes; the next one goes on from its end.
  incremental: true,
  params: (raw) => {
    const source = raw.source ?? process.env.SOURCE_URL;
    if (source === undefined || !source.startsWith('postgres')) throw new Error('give --param source=postgres://… (a database with wal_level = logical)');
    return { source, slot: raw.slot ?? 'ckpt_entitlements' };
  },
  // idleBytes: while grants is idle and other tables write, the feed hands out an idle mark every
  // 16 MiB of WAL, so that a checkpoint lets the slot release that WAL (see docs/sources.md).
  source: ({ params }) => pgChanges({ connection: params.source, slot: params.slot, publication: 'grants_pub', idleBytes: 16 * 1024 * 1024 }),
  async setup({ tx }) {
    await tx.query(`CREATE TABLE IF NOT EXISTS actual_entitlements (
      grant_id INTEGER PRIMARY KEY, user_name VARCHAR(64) NOT NULL, entitlement VARCHAR(128) NOT NULL)`);
  },
  async process(change, ctx) {
    if (change.op === 'idle') return; // nothing of ours changed up to this mark
    if (delayMs > 0) await sleep(delayMs);
    if (change.op === 'truncate') throw new Error(`${change.table} was truncated: revoke by hand, this feed revokes row by row`);
    const row = change.op === 'delete' ? change.old : change.new;
    if (row === undefined) throw new Error(`a ${change.op} without its row`);
    const id = Number(row.id);
    if (change.op === 'delete') {
      await ctx.tx.query(sql(ctx, 'DELETE FROM actual_entitlements WHERE grant_id = ?'), [id]);
      // The target system's revoke: once per grant, whatever crashes around it.
      await ctx.once(
        `revoke:${id}`,
        async () => {
          const system = await targetSystem(ctx.params.source);
          await system.query('INSERT INTO access_revocations (grant_id, user_name, entitlement) VALUES ($1, $2, $3)', [id, row.user_name, row.entitlement]);
        },
        {
          verify: async () => {
            const system = await targetSystem(ctx.params.source);
            return ((await system.query('SELECT 1 FROM access_revocations WHERE grant_id = $1', [id])).rowCount ?? 0) > 0;
          },
        },
      );
      return;
    }
    await ctx.tx.query(sql(ctx, 'DELETE FROM actual_entitlements WHERE grant_id = ?'), [id]);
    await ctx.tx.query(sql(ctx, 'INSERT INTO actual_entitlements (grant_id, user_name, entitlement) VALUES (?, ?, ?)'), [id, row.user_name, row.entitlement]);
  },
});

// `node examples/entitlement-changes.ts setup URL` and `… change URL N`.
if (import.meta.main) {
  const [command, url, count] = process.argv.slice(2);
  if (url === undefined || (command !== 'setup' && command !== 'change')) {
    console.error('usage: node examples/entitlement-changes.ts setup|change postgres://… [N]');
    process.exitCode = 2;
  } else if (command === 'setup') {
    await setupSource(url);
    console.log('grants, access_revocations and the publication grants_pub are ready');
  } else {
    await changeGrants(url, Number(count ?? 100));
    console.log(`${count ?? 100} changes made to grants`);
  }
}
