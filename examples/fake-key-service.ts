// A small stand-in for an API-key service (think a cloud provider's IAM or a secrets manager),
// kept in a local SQLite file so the rotation example and its crash test can inspect it.
// FAKE_KEYS_CRASH_AFTER=<operation>:<app> makes the process SIGKILL itself right after that
// operation took effect: the moment an effect has happened and its caller has not recorded it.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

export interface IssuedKey {
  id: string;
  secret: string;
}

export class FakeKeyService {
  readonly #db: DatabaseSync;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#db.exec('PRAGMA busy_timeout = 5000');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS keys (
      id TEXT PRIMARY KEY, app TEXT NOT NULL, secret TEXT NOT NULL, status TEXT NOT NULL,
      idempotency_key TEXT UNIQUE, created_at INTEGER NOT NULL)`);
    this.#db.exec('CREATE TABLE IF NOT EXISTS apps (app TEXT PRIMARY KEY, config_key_id TEXT NOT NULL)');
  }

  /** Create `count` apps, each with one active key in its config (once). */
  seed(count: number): string[] {
    const apps = Array.from({ length: count }, (_, index) => `app-${String(index + 1).padStart(2, '0')}`);
    for (const app of apps) {
      if (this.#db.prepare('SELECT 1 FROM apps WHERE app = ?').get(app)) continue;
      const key = this.#insertKey(app, null);
      this.#db.prepare('INSERT INTO apps (app, config_key_id) VALUES (?, ?)').run(app, key.id);
    }
    return apps;
  }

  #insertKey(app: string, idempotencyKey: string | null): IssuedKey {
    const key = { id: `key_${randomUUID().slice(0, 8)}`, secret: `sk_live_${randomBytes(16).toString('hex')}` };
    this.#db
      .prepare("INSERT INTO keys (id, app, secret, status, idempotency_key, created_at) VALUES (?, ?, ?, 'active', ?, ?)")
      .run(key.id, app, key.secret, idempotencyKey, Date.now());
    return key;
  }

  #maybeCrash(operation: string, app: string): void {
    if (process.env.FAKE_KEYS_CRASH_AFTER === `${operation}:${app}`) process.kill(process.pid, 'SIGKILL');
  }

  currentKeyId(app: string): string {
    const row = this.#db.prepare('SELECT config_key_id FROM apps WHERE app = ?').get(app) as { config_key_id: string } | undefined;
    if (row === undefined) throw new Error(`no app ${app}`);
    return row.config_key_id;
  }

  /** Like real key APIs, a repeated idempotency key returns the key it issued the first time. */
  issueKey(app: string, idempotencyKey: string): IssuedKey {
    const existing = this.#db.prepare('SELECT id, secret FROM keys WHERE idempotency_key = ?').get(idempotencyKey) as IssuedKey | undefined;
    const key = existing ?? this.#insertKey(app, idempotencyKey);
    this.#maybeCrash('issue', app);
    return { id: key.id, secret: key.secret };
  }

  setConfig(app: string, keyId: string): void {
    this.#db.prepare('UPDATE apps SET config_key_id = ? WHERE app = ?').run(keyId, app);
    this.#maybeCrash('update', app);
  }

  /** The app authenticates with its configured key: it must be active and match the secret. */
  validate(app: string, secret: string): boolean {
    const row = this.#db.prepare('SELECT k.secret, k.status FROM apps a JOIN keys k ON k.id = a.config_key_id WHERE a.app = ?').get(app) as
      | { secret: string; status: string }
      | undefined;
    if (row === undefined || row.status !== 'active' || row.secret !== secret) throw new Error(`app ${app} cannot authenticate with its configured key`);
    this.#maybeCrash('validate', app);
    return true;
  }

  revoke(keyId: string, app: string): void {
    this.#db.prepare("UPDATE keys SET status = 'revoked' WHERE id = ?").run(keyId);
    this.#maybeCrash('revoke', app);
  }

  isRevoked(keyId: string): boolean {
    const row = this.#db.prepare('SELECT status FROM keys WHERE id = ?').get(keyId) as { status: string } | undefined;
    return row?.status === 'revoked';
  }

  /** Every key, oldest first, and each app's configured key: what a check of the end state reads. */
  keys(): { id: string; app: string; status: string; issuedByRotation: boolean }[] {
    const rows = this.#db.prepare('SELECT id, app, status, idempotency_key FROM keys ORDER BY app, created_at').all() as {
      id: string;
      app: string;
      status: string;
      idempotency_key: string | null;
    }[];
    return rows.map((row) => ({ id: row.id, app: row.app, status: row.status, issuedByRotation: row.idempotency_key !== null }));
  }

  configs(): Map<string, string> {
    const rows = this.#db.prepare('SELECT app, config_key_id FROM apps ORDER BY app').all() as { app: string; config_key_id: string }[];
    return new Map(rows.map((row) => [row.app, row.config_key_id]));
  }

  close(): void {
    this.#db.close();
  }
}
