// A nightly incremental reconciliation: the HR system's `entitlements` table says who should hold
// which entitlement; each night's run applies only the rows added or changed since the last run
// ended into `actual_entitlements` (on the store, through ctx.tx, exactly once), never the whole
// table again. The table is read with sqlTable in (updated_at, id) order, and `incremental: true`
// makes `ckpt run` on a completed instance start a new generation at the last run's end.
//
//   ckpt run examples/incremental-reconcile.ts           # first night: the 2,000 rows made on first run
//   node examples/incremental-reconcile.ts change 300    # the day's changes: 300 rows added or updated
//   ckpt run examples/incremental-reconcile.ts           # next night: exactly those 300
//   ckpt run examples/incremental-reconcile.ts           # nothing new: completes at once and says so
//
// The high-water key must only grow as rows become visible: here one writer stamps `updated_at`
// from a counter. With many writers, stamp it at commit (a sequence), or a row committed late
// with an earlier stamp is never read. `--param db=sqlite:PATH` (or postgres://, mysql://) reads
// your own table. RECONCILE_PACE=N slows the run to N rows/s, to watch or interrupt it.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, sqlTable } from 'checkpointed';

interface Entitlement {
  id: number;
  account: string;
  entitlement: string;
  active: number;
  updated_at: number;
}

const defaultDb = join(import.meta.dirname, 'data', 'hr-entitlements.db');
const pace = Number(process.env.RECONCILE_PACE ?? 0);
const startedAt = performance.now();
let seen = 0;

/** The HR table, made once with `rows` rows. */
function ensureHrTable(path: string, rows: number): string {
  if (existsSync(path)) return path;
  mkdirSync(join(path, '..'), { recursive: true });
  rmSync(`${path}.tmp`, { force: true });
  const db = new DatabaseSync(`${path}.tmp`);
  db.exec(`CREATE TABLE entitlements (
    id INTEGER PRIMARY KEY, account TEXT NOT NULL, entitlement TEXT NOT NULL,
    active INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE INDEX entitlements_high_water ON entitlements (updated_at, id)`);
  db.close();
  renameSync(`${path}.tmp`, path);
  changeRows(path, rows);
  return path;
}

/**
 * The day's changes: `count` rows, one in four an update of an existing row (revoked or granted
 * again), the rest new grants; each stamped with the next `updated_at`. Returns the stamps used.
 */
export function changeRows(path: string, count: number): { from: number; to: number } {
  const db = new DatabaseSync(path, { timeout: 5000 });
  try {
    db.exec('BEGIN IMMEDIATE');
    const { high, rows } = db.prepare('SELECT coalesce(max(updated_at), 0) AS high, count(*) AS rows FROM entitlements').get() as {
      high: number;
      rows: number;
    };
    const insert = db.prepare('INSERT INTO entitlements (account, entitlement, active, updated_at) VALUES (?, ?, 1, ?)');
    const update = db.prepare('UPDATE entitlements SET active = 1 - active, updated_at = ? WHERE id = ?');
    for (let n = 1; n <= count; n++) {
      const stamp = high + n;
      if (rows > 0 && n % 4 === 0) update.run(stamp, 1 + ((stamp * 7919) % rows));
      else insert.run(`user${(stamp * 31) % 997}`, `app-${stamp % 13}:role-${stamp % 3}`, stamp);
    }
    db.exec('COMMIT');
    return { from: high + 1, to: high + count };
  } finally {
    db.close();
  }
}

export default defineJob<Entitlement, { db: string }>({
  name: 'incremental-reconcile',
  incremental: true,
  params: (raw) => ({ db: raw.db ?? '' }),
  source: ({ params }) =>
    sqlTable<Entitlement>({
      connection: params.db === '' ? `sqlite:${ensureHrTable(defaultDb, 2000)}` : params.db,
      table: 'entitlements',
      key: ['updated_at', 'id'],
      pageSize: 500,
    }),
  async setup({ tx }) {
    await tx.query(`CREATE TABLE IF NOT EXISTS actual_entitlements (
      account VARCHAR(64) NOT NULL, entitlement VARCHAR(64) NOT NULL, source_id INTEGER NOT NULL,
      PRIMARY KEY (account, entitlement))`);
    // One row per change applied: the evidence that each change was applied exactly once.
    await tx.query(`CREATE TABLE IF NOT EXISTS applied_changes (
      source_id INTEGER NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (source_id, updated_at))`);
  },
  async process(row, ctx) {
    if (pace > 0) {
      const due = startedAt + (++seen * 1000) / pace;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
    }
    const q = ctx.tx.dialect === 'postgres' ? (n: number) => `$${n}` : () => '?';
    if (row.active) {
      await ctx.tx.query(
        ctx.tx.dialect === 'mysql'
          ? 'INSERT INTO actual_entitlements (account, entitlement, source_id) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE source_id = VALUES(source_id)'
          : `INSERT INTO actual_entitlements (account, entitlement, source_id) VALUES (${q(1)}, ${q(2)}, ${q(3)}) ON CONFLICT (account, entitlement) DO UPDATE SET source_id = excluded.source_id`,
        [row.account, row.entitlement, row.id],
      );
    } else {
      await ctx.tx.query(`DELETE FROM actual_entitlements WHERE account = ${q(1)} AND entitlement = ${q(2)}`, [row.account, row.entitlement]);
    }
    await ctx.tx.query(`INSERT INTO applied_changes (source_id, updated_at) VALUES (${q(1)}, ${q(2)})`, [row.id, row.updated_at]);
  },
});

// `node examples/incremental-reconcile.ts change N [PATH]`: the day's changes, made by hand.
if (import.meta.main && process.argv[2] === 'change') {
  const path = process.argv[4] ?? ensureHrTable(defaultDb, 2000);
  const { from, to } = changeRows(path, Number(process.argv[3] ?? 100));
  console.log(`changed ${to - from + 1} rows of ${path} (updated_at ${from}…${to})`);
}
