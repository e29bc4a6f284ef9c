// Stale admins (an access-review check): walk every account of a directory database in key order and count, per
// tenant, the accounts with admin rights that nobody has used for 90 days. The accounts are read
// with the keyset source: pages of 500 rows by (tenant, account_id), each page seeking past the
// last key, so a resume after a crash or Ctrl-C starts at the next account, never at row 1.
// The first run against the default database creates it: 200,000 accounts in 20 tenants.
//
//   ckpt run examples/stale-admins.ts                                  # SQLite, made on first run
//   ckpt run examples/stale-admins.ts --param db=postgres://me@host/directory   # your own table
//
// Any database works that has `accounts (tenant, account_id, email, is_admin, last_login_day)`
// with a unique (tenant, account_id): `db` is a sqlite:, postgres:// or mysql:// URL.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { defineJob, sqlTable } from 'checkpointed';

interface Account {
  tenant: string;
  account_id: number;
  email: string;
  is_admin: number;
  last_login_day: number;
}

type Review = { accounts: number; staleAdmins: number; byTenant: { [tenant: string]: number } };

/** Days since 1970 of "today" for the review: a param, so a rerun on another day is another instance. */
const dayNumber = (day: string) => Math.floor(Date.parse(`${day}T00:00:00Z`) / 86_400_000);

/** A deterministic directory with gaps in the account ids (deleted accounts), made once. */
function ensureDirectory(accounts: number): string {
  const dir = join(import.meta.dirname, 'data');
  const path = join(dir, `directory-${accounts}.db`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  rmSync(`${path}.tmp`, { force: true });
  const db = new DatabaseSync(`${path}.tmp`);
  db.exec(`CREATE TABLE accounts (
    tenant TEXT NOT NULL, account_id INTEGER NOT NULL, email TEXT NOT NULL,
    is_admin INTEGER NOT NULL, last_login_day INTEGER NOT NULL,
    PRIMARY KEY (tenant, account_id)) WITHOUT ROWID`);
  const insert = db.prepare('INSERT INTO accounts VALUES (?, ?, ?, ?, ?)');
  let seed = 42;
  const next = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const today = dayNumber('2026-11-24');
  db.exec('BEGIN');
  for (let n = 0; n < accounts; n++) {
    const tenant = `tenant-${String(n % 20).padStart(2, '0')}`;
    const id = Math.floor(n / 20) * 3 + Math.floor(next() * 3); // gaps: deleted accounts
    insert.run(tenant, id, `user${n}@${tenant}.example`, next() < 0.05 ? 1 : 0, today - Math.floor(next() * 365));
  }
  db.exec('COMMIT');
  db.close();
  renameSync(`${path}.tmp`, path);
  return path;
}

export default defineJob<Account, { db: string; day: string; accounts: number }, Review>({
  name: 'stale-admins',
  params: (raw) => {
    const day = raw.day ?? '2026-11-24';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`day must be YYYY-MM-DD (got ${JSON.stringify(day)})`);
    const accounts = Number(raw.accounts ?? 200_000);
    if (!Number.isSafeInteger(accounts) || accounts < 1) throw new Error(`accounts must be a whole number ≥ 1 (got ${JSON.stringify(raw.accounts)})`);
    return { db: raw.db ?? '', day, accounts };
  },
  source: ({ params }) =>
    sqlTable<Account>({
      connection: params.db === '' ? `sqlite:${ensureDirectory(params.accounts)}` : params.db,
      table: 'accounts',
      key: ['tenant', 'account_id'],
      pageSize: 500,
    }),
  initialState: () => ({ accounts: 0, staleAdmins: 0, byTenant: {} }),
  async process(account, ctx) {
    const review = ctx.state;
    review.accounts += 1;
    if (Number(account.is_admin) === 1 && dayNumber(ctx.params.day) - Number(account.last_login_day) > 90) {
      review.staleAdmins += 1;
      review.byTenant[account.tenant] = (review.byTenant[account.tenant] ?? 0) + 1;
    }
  },
});
