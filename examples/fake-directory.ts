// A small stand-in for a directory service's admin API (think Entra ID, Okta or LDAP), kept in a
// local SQLite file so the deprovisioning example and `ckpt chaos` can inspect what it was told.
// Every call is logged; a disable takes effect at once and its response takes `latencyMs` to come
// back, so a crash can land after the directory acted and before the caller knew it had.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';

export type AccountStatus = 'active' | 'disabled';

export class FakeDirectory {
  readonly #db: DatabaseSync;
  readonly #latencyMs: number;

  constructor(path: string, latencyMs = 0) {
    mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#latencyMs = latencyMs;
    this.#db.exec('PRAGMA busy_timeout = 5000');
    this.#db.exec('PRAGMA journal_mode = WAL');
    // A fake service: what matters is what survives our process being killed, not a power loss.
    this.#db.exec('PRAGMA synchronous = NORMAL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS accounts (
      id TEXT PRIMARY KEY, status TEXT NOT NULL, confirmed_at INTEGER, request_id TEXT)`);
    this.#db.exec(`CREATE TABLE IF NOT EXISTS calls (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, account TEXT NOT NULL, request_id TEXT, pid INTEGER NOT NULL, at INTEGER NOT NULL)`);
  }

  /** `count` active service accounts, svc-001…, created once. */
  seed(count: number): string[] {
    const ids = Array.from({ length: count }, (_, index) => `svc-${String(index + 1).padStart(3, '0')}`);
    const insert = this.#db.prepare("INSERT INTO accounts (id, status) VALUES (?, 'active') ON CONFLICT DO NOTHING");
    for (const id of ids) insert.run(id);
    return ids;
  }

  #log(op: string, account: string, requestId: string | null = null): void {
    this.#db.prepare('INSERT INTO calls (op, account, request_id, pid, at) VALUES (?, ?, ?, ?, ?)').run(op, account, requestId, process.pid, Date.now());
  }

  /** Disables the account; the directory has acted before the response (slowly) returns. */
  async disable(account: string, requestId: string): Promise<{ account: string; status: AccountStatus }> {
    // The act and its log line in one transaction: a caller killed between the two statements would
    // leave a logged disable that never took effect, so `verify` would rightly say "not done" and
    // the log would show a second disable that the directory only performed once.
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      this.#log('disable', account, requestId);
      this.#db.prepare("UPDATE accounts SET status = 'disabled', request_id = ? WHERE id = ?").run(requestId, account);
      this.#db.exec('COMMIT');
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
    if (this.#latencyMs > 0) await sleep(this.#latencyMs);
    return { account, status: 'disabled' };
  }

  /** What a careless restart might do: the API has it, so the example's invariant checks it is never called. */
  async enable(account: string): Promise<void> {
    this.#log('enable', account);
    this.#db.prepare("UPDATE accounts SET status = 'active' WHERE id = ?").run(account);
  }

  async status(account: string): Promise<AccountStatus> {
    this.#log('status', account);
    const row = this.#db.prepare('SELECT status FROM accounts WHERE id = ?').get(account) as { status: AccountStatus } | undefined;
    if (row === undefined) throw new Error(`no account ${account}`);
    return row.status;
  }

  /** Records that the account was seen disabled (the evidence a deprovisioning ticket closes on). */
  async confirm(account: string): Promise<number> {
    this.#log('confirm', account);
    const now = Date.now();
    this.#db.prepare('UPDATE accounts SET confirmed_at = coalesce(confirmed_at, ?) WHERE id = ?').run(now, account);
    return now;
  }

  accounts(): { id: string; status: AccountStatus; confirmed_at: number | null }[] {
    return this.#db.prepare('SELECT id, status, confirmed_at FROM accounts ORDER BY id').all() as {
      id: string;
      status: AccountStatus;
      confirmed_at: number | null;
    }[];
  }

  calls(op: string): { account: string; request_id: string | null; pid: number }[] {
    return this.#db.prepare('SELECT account, request_id, pid FROM calls WHERE op = ? ORDER BY seq').all(op) as {
      account: string;
      request_id: string | null;
      pid: number;
    }[];
  }

  close(): void {
    this.#db.close();
  }
}
