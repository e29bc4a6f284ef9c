import { existsSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { firstLine, SchemaTooNewError, StoreError, StoreIdentityError } from '../../errors.ts';
import { foreignTablesError, missingInstancesError, namesCreatedBy } from '../store-identity.ts';
import { isTransientStoreError } from '../transient.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

/**
 * Create or upgrade the store's schema; refuse a file a newer checkpointed wrote. When the file
 * is already current (the usual case) it only reads, so opening a store that another process is
 * writing through ctx.tx (holding SQLite's one write lock until its checkpoint) does not wait.
 */
export async function migrateSqlite(driver: SqliteDriver): Promise<void> {
  const db = driver.conn;
  const supported = sqliteMigrations.at(-1)?.id ?? 0;
  let current: number | undefined;
  try {
    const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ckpt_schema'").get() !== undefined;
    if (known) current = Number(db.prepare('SELECT max(version) AS version FROM ckpt_schema').get()?.version ?? 0);
  } catch (error) {
    throw driver.unusable(error, 'read');
  }
  if (current !== undefined && current > supported) throw new SchemaTooNewError(current, supported, driver.location);
  if (current === supported) return;
  if (current === undefined) {
    refuseOrphanedSide(driver);
    refuseForeignTables(driver);
  }
  try {
    db.exec('CREATE TABLE IF NOT EXISTS ckpt_schema (version INTEGER NOT NULL)');
  } catch (error) {
    throw driver.unusable(error, 'write');
  }
  driver.write(() => {
    const current = Number(driver.get('SELECT max(version) AS version FROM ckpt_schema')?.version ?? 0);
    if (current > supported) throw new SchemaTooNewError(current, supported, driver.location);
    for (const migration of sqliteMigrations) {
      if (migration.id <= current) continue;
      db.exec(migration.sql);
      driver.run('INSERT INTO ckpt_schema (version) VALUES (?)', migration.id);
    }
  });
}

/**
 * A file with no schema of ours that holds tables our migrations would create is another
 * application's database (or a job's tables made in the store file before its first run):
 * refused before the schema table is written, so the file is left as it was found.
 */
function refuseForeignTables(driver: SqliteDriver): void {
  const ours = namesCreatedBy(sqliteMigrations.map((migration) => migration.sql));
  let found: string[];
  try {
    found = driver.conn
      .prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
      .all()
      .map((row) => String(row.name))
      .filter((name) => ours.has(name));
  } catch (error) {
    throw driver.unusable(error, 'read');
  }
  if (found.length > 0) throw foreignTablesError(driver.location, found, 'point --store at another file (sqlite:PATH)');
}

const restoreAdvice = (driver: SqliteDriver) =>
  `restore ${driver.location} from a backup, or, to start over on purpose (every effect would run again), move ${driver.sidePath} away too`;

/**
 * The store-identity rule, for a main file with no schema (new, deleted, or zeroed): if the side
 * file beside it holds events or journal entries, the checkpoints are what went missing, and a new
 * store here would start every job at record 0 and run every effect again, `scope: 'instance'`
 * ones included (the journal is keyed by the old file's store id, so it would never answer).
 * Checked before anything is written, so a refused open leaves the file as it found it.
 */
function refuseOrphanedSide(driver: SqliteDriver): void {
  if (driver.sidePath === ':memory:' || !existsSync(driver.sidePath)) return;
  let found: { events: number; effects: number };
  try {
    const side = new DatabaseSync(driver.sidePath);
    try {
      const has = (table: string) => side.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
      const count = (table: string) => (has(table) ? Number(side.prepare(`SELECT count(*) AS n FROM ${table}`).get()?.n ?? 0) : 0);
      found = { events: count('events'), effects: count('effects') };
    } finally {
      side.close();
    }
  } catch (error) {
    throw new StoreError(`cannot read ${driver.sidePath} (the store's effect journal and event log): ${firstLine(error)}`, { cause: error });
  }
  if (found.events === 0 && found.effects === 0) return;
  throw new StoreIdentityError(
    `the store ${driver.location} has no checkpoints, but its effect journal and event log ${driver.sidePath} hold ${found.events} events and ${found.effects} effects: ` +
      `the store file was emptied, deleted or replaced, and starting afresh would run those effects again; ${restoreAdvice(driver)}`,
  );
}

/**
 * The same rule for a main file that has its schema: an instance whose event chain is in the side
 * file must still be in the main file. One read of each file, per open.
 */
export function refuseMissingInstances(driver: SqliteDriver): void {
  const heads = driver.side.prepare('SELECT instance_id FROM chain_heads WHERE store_id = ?').all(driver.storeId);
  if (heads.length === 0) return;
  const known = new Set(driver.all('SELECT id FROM instances').map((row) => Number(row.id)));
  const missing = heads.map((row) => Number(row.instance_id)).filter((id) => !known.has(id));
  if (missing.length === 0) return;
  throw missingInstancesError(driver.location, missing, restoreAdvice(driver));
}

/**
 * Numbered schema migrations of the SQLite store. Append only: a released migration is never
 * edited; the store records the highest applied number and refuses a file with a higher one.
 */
export const sqliteMigrations: readonly { id: number; name: string; sql: string }[] = [
  {
    id: 1,
    name: 'instances, shards, checkpoints, runs, events',
    sql: `
      CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        job TEXT NOT NULL,
        params_hash TEXT NOT NULL,
        params TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 1,
        status TEXT NOT NULL DEFAULT 'open',
        version TEXT,
        created_at INTEGER NOT NULL,
        completed_at INTEGER,
        UNIQUE (job, params_hash)
      );
      CREATE TABLE shards (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES instances (id),
        generation INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        lease_owner TEXT,
        lease_token INTEGER NOT NULL DEFAULT 0,
        lease_expires_at INTEGER NOT NULL DEFAULT 0,
        run_id INTEGER,
        checkpoint_seq INTEGER NOT NULL DEFAULT 0,
        processed INTEGER NOT NULL DEFAULT 0,
        fingerprint TEXT,
        version TEXT,
        updated_at INTEGER NOT NULL,
        UNIQUE (instance_id, generation, name)
      );
      CREATE TABLE checkpoints (
        shard_id INTEGER NOT NULL REFERENCES shards (id),
        seq INTEGER NOT NULL,
        position TEXT,
        state TEXT NOT NULL,
        processed INTEGER NOT NULL,
        run_id INTEGER,
        created_at INTEGER NOT NULL,
        checksum TEXT NOT NULL,
        PRIMARY KEY (shard_id, seq)
      );
      CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES instances (id),
        generation INTEGER NOT NULL,
        shard_id INTEGER NOT NULL REFERENCES shards (id),
        shard TEXT NOT NULL,
        worker TEXT NOT NULL,
        token INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        heartbeat_at INTEGER NOT NULL,
        outcome TEXT NOT NULL DEFAULT 'running',
        resumed_from TEXT,
        start_processed INTEGER NOT NULL DEFAULT 0,
        processed INTEGER NOT NULL DEFAULT 0,
        mark_processed INTEGER NOT NULL DEFAULT 0,
        rework INTEGER,
        checkpoints INTEGER NOT NULL DEFAULT 0,
        checkpoint_ms REAL NOT NULL DEFAULT 0,
        stats TEXT NOT NULL DEFAULT '{}',
        error TEXT
      );
      CREATE INDEX runs_by_instance ON runs (instance_id, id);
      CREATE INDEX runs_running ON runs (instance_id, outcome);
      CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES instances (id),
        generation INTEGER NOT NULL,
        run_id INTEGER,
        shard TEXT,
        type TEXT NOT NULL,
        at INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX events_by_instance ON events (instance_id, id);
    `,
  },
  {
    id: 2,
    name: 'dead letters, shard params hash, store id',
    sql: `
      ALTER TABLE shards ADD COLUMN params_hash TEXT;
      CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES instances (id),
        generation INTEGER NOT NULL,
        shard_id INTEGER NOT NULL REFERENCES shards (id),
        shard TEXT NOT NULL,
        position TEXT,
        record TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        run_id INTEGER,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX dead_letters_by_instance ON dead_letters (instance_id, generation, id);
      CREATE TABLE ckpt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO ckpt_meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    `,
  },
  {
    id: 3,
    name: 'dead letter ids are never reused',
    // Without AUTOINCREMENT a deleted highest id was handed to the next dead letter, so a retry
    // that removes "letter 5" could remove a newer, never-retried letter that had inherited 5.
    sql: `
      CREATE TABLE dead_letters_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id INTEGER NOT NULL REFERENCES instances (id),
        generation INTEGER NOT NULL,
        shard_id INTEGER NOT NULL REFERENCES shards (id),
        shard TEXT NOT NULL,
        position TEXT,
        record TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        run_id INTEGER,
        created_at INTEGER NOT NULL
      );
      INSERT INTO dead_letters_v3 (id, instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at)
        SELECT id, instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at FROM dead_letters;
      DROP TABLE dead_letters;
      ALTER TABLE dead_letters_v3 RENAME TO dead_letters;
      CREATE INDEX dead_letters_by_instance ON dead_letters (instance_id, generation, id);
    `,
  },
  {
    id: 4,
    name: 'progress marks: how far a run may have got',
    sql: `
      ALTER TABLE runs ADD COLUMN mark_ceiling INTEGER;
      ALTER TABLE runs ADD COLUMN mark_step INTEGER;
    `,
  },
  {
    id: 5,
    name: 'the event log moves to the side file',
    // Events are now written to `<store>.effects`, durably at once and hash-chained (see
    // migrateSqliteSide). The old rows stay here, under a name no code writes to, until the side
    // file copies them in; a checkpointed older than this refuses the file instead of writing
    // events nobody would read.
    sql: `
      ALTER TABLE events RENAME TO events_before_audit;
    `,
  },
  {
    id: 6,
    name: "whose code made a shard's checkpoints, and which chunks wrote through ctx.tx",
    // NULL for what an older checkpointed wrote: an unknown code identity is recorded at the next
    // run, and an old corrupt checkpoint is passed over as before (whether its chunk wrote is unknown).
    sql: `
      ALTER TABLE shards ADD COLUMN code TEXT;
      ALTER TABLE checkpoints ADD COLUMN wrote_tx INTEGER;
    `,
  },
  {
    id: 7,
    name: "where a run's worker runs: machine, PID namespace, process",
    // A hostname is shared by host-network pods and cloned VMs; only a reaper on the same
    // machine and PID namespace may judge a run by its pid (job/workers.ts). Older rows: NULL,
    // judged by their lease alone.
    sql: `
      ALTER TABLE runs ADD COLUMN worker_node TEXT;
    `,
  },
  {
    id: 8,
    name: 'plans made by ckpt plan, and their approvals',
    sql: `
      CREATE TABLE plans (
        id TEXT PRIMARY KEY,
        instance_id INTEGER NOT NULL REFERENCES instances (id),
        hash TEXT NOT NULL,
        body TEXT NOT NULL,
        approvals TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX plans_by_instance ON plans (instance_id, created_at);
    `,
  },
];

/**
 * Bring the side file (`<store>.effects`: effect journal and event log) up to date. Its version
 * is its `user_version`; a side file from a newer checkpointed is refused like a newer store.
 * Then, once per store, the events an older checkpointed kept in the main file are copied in,
 * oldest first, before any new one: shown by `ckpt events`, outside the chain (they predate it).
 */
export function migrateSqliteSide(side: DatabaseSync, driver: SqliteDriver, storeId: string): void {
  const supported = sqliteSideMigrations.at(-1)?.id ?? 0;
  const version = () => Number(side.prepare('PRAGMA user_version').get()?.user_version ?? 0);
  if (version() > supported) throw new SchemaTooNewError(version(), supported, driver.sidePath);
  const imported = () => version() >= 2 && side.prepare("SELECT 1 FROM side_meta WHERE store_id = ? AND key = 'legacy_events'").get(storeId) !== undefined;
  if (version() === supported && imported()) {
    refuseRegressedSide(side, driver);
    bindSide(driver);
    return;
  }
  side.exec('BEGIN IMMEDIATE');
  try {
    const current = version();
    if (current > supported) throw new SchemaTooNewError(current, supported, driver.sidePath);
    for (const migration of sqliteSideMigrations) {
      if (migration.id <= current) continue;
      side.exec(migration.sql);
      side.exec(`PRAGMA user_version = ${migration.id}`);
    }
    if (!imported()) {
      // This side file has never served this store: new, or the store's own was lost.
      refuseLostSide(driver);
      const legacy = driver.get("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'events_before_audit'") !== undefined;
      const insert = side.prepare('INSERT INTO events (store_id, instance_id, generation, run_id, shard, type, at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      for (const row of legacy ? driver.all('SELECT * FROM events_before_audit ORDER BY id') : []) {
        insert.run(
          storeId,
          Number(row.instance_id),
          Number(row.generation),
          row.run_id === null ? null : Number(row.run_id),
          row.shard === null ? null : String(row.shard),
          String(row.type),
          Number(row.at),
          String(row.data),
        );
      }
      side.prepare("INSERT INTO side_meta (store_id, key, value) VALUES (?, 'legacy_events', ?)").run(storeId, String(Date.now()));
    }
    refuseRegressedSide(side, driver);
    side.exec('COMMIT');
  } catch (error) {
    if (side.isTransaction) side.exec('ROLLBACK');
    throw error;
  }
  bindSide(driver);
}

/** The main file's note of how far the side file's event log reached at its last checkpoint (`ckpt_meta`). */
export const SIDE_REACH = 'side_events_reach';

/**
 * The store-identity rule for a side file that went back in time: the main file's checkpoints
 * were made after its event log reached event N (noted with each checkpoint), but the side file
 * now ends before N. It lost writes it had made durable: its `-wal` file deleted (with `-shm`)
 * after a crash, before SQLite copied it into the file, or an older copy restored. Running on
 * would repeat every effect whose journal entry went with them, without asking `verify`, since
 * no intent is left to say it may have happened. Checked at every open: one read of each file.
 */
function refuseRegressedSide(side: DatabaseSync, driver: SqliteDriver): void {
  if (driver.sidePath === ':memory:') return;
  const noted = driver.get('SELECT value FROM ckpt_meta WHERE key = ?', SIDE_REACH);
  if (noted === undefined) return;
  const reach = Number(side.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get()?.seq ?? 0);
  if (reach >= Number(noted.value)) return;
  throw new StoreIdentityError(
    `the effect journal and event log ${driver.sidePath} ends at event ${reach}, but the store ${driver.location} made checkpoints after its event ${noted.value}: ` +
      `it lost writes it had made durable (its ${driver.sidePath}-wal deleted after a crash, or an older copy restored), and running on would repeat the effects they recorded; ` +
      `restore ${driver.sidePath} with its -wal file from a backup, or, to start over on purpose (every effect would run again), move ${driver.location} away too`,
  );
}

/** The main file's note that a side file has served it (`ckpt_meta`), written once. */
const SIDE_BOUND = 'side_file';

/**
 * The store-identity rule the other way round: the main file knows its side file has served it,
 * and holds job instances, but the side file beside it does not know the store (deleted, emptied,
 * or another store's copied in). A fresh side file here would lose the effect journal, so every
 * effect it records as done would run again, and the audit log would start over with nothing to
 * show that it had. Checked inside the side file's first transaction, so a refusal leaves no
 * trace there and is said again at every open.
 */
function refuseLostSide(driver: SqliteDriver): void {
  if (driver.sidePath === ':memory:') return;
  if (driver.get('SELECT value FROM ckpt_meta WHERE key = ?', SIDE_BOUND) === undefined) return;
  const instances = Number(driver.get('SELECT count(*) AS n FROM instances')?.n ?? 0);
  if (instances === 0) return;
  throw new StoreIdentityError(
    `the store ${driver.location} holds ${instances} job instance${instances === 1 ? '' : 's'}, but its effect journal and event log ${driver.sidePath} is missing, empty or another store's: ` +
      `running on would repeat every effect the journal recorded, and the audit log would start over; restore ${driver.sidePath} from a backup, ` +
      `or, to start over on purpose (every effect would run again), move ${driver.location} away too`,
  );
}

/**
 * Notes in the main file that its side file serves it, so that losing the side file is seen. A
 * store from before this note gets it at its first open with its side file: without waiting, as a
 * job may hold the main file's write lock now (then a later open writes it).
 */
function bindSide(driver: SqliteDriver): void {
  if (driver.sidePath === ':memory:' || driver.get('SELECT 1 AS found FROM ckpt_meta WHERE key = ?', SIDE_BOUND) !== undefined) return;
  const db = driver.conn;
  if (db.isTransaction) return;
  const busyTimeoutMs = Number(db.prepare('PRAGMA busy_timeout').get()?.timeout ?? 0);
  try {
    db.exec('PRAGMA busy_timeout = 0');
    driver.run('INSERT OR IGNORE INTO ckpt_meta (key, value) VALUES (?, ?)', SIDE_BOUND, String(Date.now()));
  } catch (error) {
    if (!isTransientStoreError(error)) throw driver.unusable(error, 'write');
  } finally {
    db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
  }
}

/** Numbered migrations of the side file. Append only, like the main file's. */
export const sqliteSideMigrations: readonly { id: number; name: string; sql: string }[] = [
  {
    id: 1,
    name: 'effect journal',
    // Side files written before migrations were numbered have this table already.
    sql: `
      CREATE TABLE IF NOT EXISTS effects (
        store_id TEXT NOT NULL, instance_id INTEGER NOT NULL, generation INTEGER NOT NULL, key TEXT NOT NULL,
        status TEXT NOT NULL, result TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL,
        PRIMARY KEY (store_id, instance_id, generation, key)
      );
    `,
  },
  {
    id: 2,
    name: 'event log with its hash chain',
    // ids never reused: the chain is checked in id order, and a reused id would hide a deletion.
    sql: `
      CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        store_id TEXT NOT NULL,
        instance_id INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        run_id INTEGER,
        shard TEXT,
        type TEXT NOT NULL,
        at INTEGER NOT NULL,
        data TEXT NOT NULL,
        seq INTEGER,
        prev_hash TEXT,
        hash TEXT,
        keyed INTEGER
      );
      CREATE INDEX events_by_instance ON events (store_id, instance_id, id);
      CREATE TABLE chain_heads (
        store_id TEXT NOT NULL,
        instance_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (store_id, instance_id)
      );
      CREATE TABLE side_meta (store_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (store_id, key));
    `,
  },
  {
    // 3 was this migration's number in some builds, and the guards' in others: both moved up, and
    // both create IF NOT EXISTS, so a side file at 3 or 4 from any of them ends with every table.
    id: 4,
    name: "rate buckets shared by a job's workers",
    // In the side file: a take is a short transaction of its own, never part of a job's open one.
    // IF NOT EXISTS: a side file from before its renumbering (it was 3) has the table already.
    sql: `
      CREATE TABLE IF NOT EXISTS rate_buckets (
        store_id TEXT NOT NULL,
        name TEXT NOT NULL,
        tokens REAL NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (store_id, name)
      );
    `,
  },
  {
    id: 5,
    name: 'guards: effect limits, holds, approvals',
    // Beside the journal: a claim is counted against its limit in the claim's own transaction,
    // and an approval raises a limit in the same transaction as its chained event. IF NOT EXISTS:
    // a side file that had it as 3 or 4 (see above) has the tables already.
    sql: `
      CREATE TABLE IF NOT EXISTS effect_counts (
        store_id TEXT NOT NULL, instance_id INTEGER NOT NULL, generation INTEGER NOT NULL, kind TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0, raised INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (store_id, instance_id, generation, kind)
      );
      CREATE TABLE IF NOT EXISTS holds (
        store_id TEXT NOT NULL, instance_id INTEGER NOT NULL, generation INTEGER NOT NULL, name TEXT NOT NULL,
        kind TEXT NOT NULL, detail TEXT NOT NULL, required INTEGER NOT NULL, round INTEGER NOT NULL,
        held_at INTEGER NOT NULL, released_at INTEGER,
        PRIMARY KEY (store_id, instance_id, generation, name)
      );
      CREATE TABLE IF NOT EXISTS approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        store_id TEXT NOT NULL, instance_id INTEGER NOT NULL, generation INTEGER NOT NULL, name TEXT NOT NULL, round INTEGER NOT NULL,
        by_name TEXT NOT NULL, os_user TEXT, reason TEXT NOT NULL, raise_by INTEGER, at INTEGER NOT NULL,
        UNIQUE (store_id, instance_id, generation, name, round, by_name)
      );
    `,
  },
  {
    id: 6,
    name: "the run that wrote each effect's intent",
    // A claim that finds another run's intent waits while that run holds its lease, instead of
    // taking an effect still in flight on another worker for one left in doubt by a crash.
    sql: 'ALTER TABLE effects ADD COLUMN run_id INTEGER;',
  },
];
