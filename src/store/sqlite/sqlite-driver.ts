import { dirname, resolve } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { CheckpointedError, firstLine, StoreError } from '../../errors.ts';
import { makeDirectory } from '../../make-directory.ts';
import { chainKeyFinder } from '../../secret.ts';
import type { Row } from '../rows.ts';
import type { Tx } from '../store.ts';
import { isTransientStoreError } from '../transient.ts';

export type { SQLInputValue } from 'node:sqlite';

export interface SqliteStoreOptions {
  /** How long a write waits for another process's lock before it fails, in ms. */
  busyTimeoutMs?: number;
  /** The key of the event log's hash chain; default: from CKPT_SECRET_KEY or the `<store>.key` file, if either exists. */
  chainKey?: () => Buffer | undefined;
}

/**
 * What every concern of the SQLite store shares: the one connection (opened on first use),
 * prepared statements, write transactions, and the job's open transaction. Each
 * `sqlite-<concern>.ts` class takes this in its constructor.
 *
 * node:sqlite is synchronous, so every call runs to its end before another starts: the single
 * connection needs no further serialisation. Times are this machine's clock (`Date.now()`): the
 * processes sharing a SQLite file share that clock.
 */
export class SqliteDriver {
  readonly location: string;
  /** Absolute path of the file, or `:memory:`. */
  readonly path: string;
  readonly #options: SqliteStoreOptions;
  #db: DatabaseSync | undefined;
  #ended = false;
  readonly #statements = new Map<string, StatementSync>();
  /** The job's own statements, kept apart from ours so a job's many never evict the store's. */
  readonly jobStatements = new Map<string, PreparedStatement>();
  /** The job's open transaction (a SqliteTx): one at a time per store (the file has one write lock). */
  openTx: (Tx & { readonly active: boolean }) | undefined;
  /** Called on close, before the connection goes. */
  readonly onClose: (() => void)[] = [];
  /** The side file, `<store>.effects` (a second database for `:memory:`). */
  readonly sidePath: string;
  #side: DatabaseSync | undefined;
  #storeId: string | undefined;
  readonly #sideStatements = new Map<string, StatementSync>();
  readonly chainKey: () => Buffer | undefined;
  /** Called when an event is about to be linked with no key (none set, no key file): throws if the chain is keyed (sqlite-key-record.ts). */
  noChainKey: (() => void) | undefined;
  /** Brings the side file's schema up to date (sqlite-migrations.ts), given by the store. */
  readonly #migrateSide: SideMigration;

  constructor(path: string, options: SqliteStoreOptions, migrateSide: SideMigration) {
    this.#migrateSide = migrateSide;
    this.path = path === ':memory:' ? path : resolve(path);
    this.location = path;
    this.#options = options;
    this.sidePath = this.path === ':memory:' ? ':memory:' : `${this.path}.effects`;
    const finder = chainKeyFinder(process.env, this.path === ':memory:' ? undefined : `${this.path}.key`);
    this.chainKey =
      options.chainKey ??
      (() => {
        const key = finder();
        if (key === undefined) this.noChainKey?.();
        return key;
      });
  }

  /** The connection, opened on first use; never again after close. */
  get conn(): DatabaseSync {
    if (this.#ended) throw new StoreError(`the store ${this.location} is closed`);
    if (this.#db === undefined) this.#db = this.#open();
    return this.#db;
  }

  #open(): DatabaseSync {
    if (this.path !== ':memory:') {
      try {
        makeDirectory(dirname(this.path));
      } catch (error) {
        throw new StoreError(
          `cannot create the directory ${dirname(this.path)} for the store (${(error as NodeJS.ErrnoException).code ?? firstLine(error)}); choose a writable place with --store sqlite:PATH`,
          { cause: error },
        );
      }
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(this.path);
    } catch (error) {
      throw new StoreError(`cannot open the store ${this.location}: ${firstLine(error)}; check that the path is writable`, { cause: error });
    }
    try {
      whileBusy(this.#options.busyTimeoutMs ?? 10_000, () => {
        durableWal(db, this.#options.busyTimeoutMs ?? 10_000);
        db.exec('PRAGMA foreign_keys = ON');
      });
      return db;
    } catch (error) {
      db.close();
      throw this.unusable(error, 'use');
    }
  }

  /** What to tell the user when the file cannot serve as a store. */
  unusable(error: unknown, verb: string): StoreError {
    const message = firstLine(error);
    if (/not a database|file is encrypted/i.test(message)) {
      return new StoreError(`${this.location} is not a checkpointed store (not a SQLite database); point --store at another file`, { cause: error });
    }
    if (/malformed|corrupt/i.test(message)) {
      return new StoreError(`the store ${this.location} is damaged (${message}); restore it from a backup or point --store at another file`, { cause: error });
    }
    return new StoreError(`cannot ${verb} the store ${this.location}: ${message}; check that the file and its directory are writable`, { cause: error });
  }

  /** Our statements are prepared once and reused. */
  statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.conn.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
  all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.statement(sql).all(...params) as Row[];
  }
  get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.statement(sql).get(...params) as Row | undefined;
  }
  /** Runs a statement; the number of rows it changed. */
  run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.statement(sql).run(...params).changes);
  }

  /**
   * Runs `work` in a write transaction, or inside the job's open one: then it commits with the
   * job's checkpoint (the connection is the job's, and SQLite has no second writer to use).
   */
  write<T>(work: () => T): T {
    const db = this.conn;
    return db.isTransaction ? work() : inWriteTransaction(db, work);
  }

  /** The main file's random id: a side file left beside a deleted and recreated store never answers for it. */
  get storeId(): string {
    this.#storeId ??= String(this.get("SELECT value FROM ckpt_meta WHERE key = 'store_id'")?.value ?? 'unknown');
    return this.#storeId;
  }

  /**
   * The side file's connection, opened (and its schema brought up to date) on first use. Why a
   * second file: the effect journal and the event log must be durable at once, but the main
   * file's one connection is usually inside the job's open transaction, which holds the file's
   * write lock until the next checkpoint: a write there would commit with half a chunk or be lost
   * with it, and a second connection to the main file would wait on our own lock. The side file
   * has its own lock and WAL; each write is a short transaction with synchronous=FULL, durable
   * when the call returns, whatever the main file is doing.
   */
  get side(): DatabaseSync {
    if (this.#side !== undefined) return this.#side;
    if (this.#ended) throw new StoreError(`the store ${this.location} is closed`);
    const storeId = this.storeId;
    let db: DatabaseSync | undefined;
    try {
      const side = new DatabaseSync(this.sidePath);
      db = side;
      // As the main file's: busy at once while another process recovers the WAL a SIGKILLed one left.
      whileBusy(this.#options.busyTimeoutMs ?? 10_000, () => {
        durableWal(side, this.#options.busyTimeoutMs ?? 10_000);
        this.#migrateSide(side, this, storeId);
      });
    } catch (error) {
      db?.close();
      // A newer side file is refused as a newer store is (exit 4), not reported as unopenable;
      // so is one that lost the store's journal (the store-identity rule).
      if (error instanceof CheckpointedError) throw error;
      const message = firstLine(error);
      const advice = /not a database|malformed|corrupt|file is encrypted/i.test(message)
        ? `restore it from a backup (without it, every effect it recorded would run again)`
        : 'check that it is writable';
      throw new StoreError(`cannot open ${this.sidePath} (the store's effect journal and event log): ${message}; ${advice}`, { cause: error });
    }
    this.#side = db;
    return db;
  }

  /** Opens (and migrates) the side file now rather than at its first use. */
  openSide(): void {
    void this.side;
  }

  sideStatement(sql: string): StatementSync {
    let statement = this.#sideStatements.get(sql);
    if (statement === undefined) {
      statement = this.side.prepare(sql);
      this.#sideStatements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `work` in one short write transaction on the side file: durable when it returns. */
  sideWrite<T>(work: () => T): T {
    return inWriteTransaction(this.side, work);
  }

  close(): void {
    this.#ended = true;
    this.#sideStatements.clear();
    this.#side?.close();
    this.#side = undefined;
    const db = this.#db;
    this.#db = undefined;
    this.#statements.clear();
    this.jobStatements.clear();
    for (const hook of this.onClose) hook();
    if (db === undefined) return;
    if (db.isTransaction) db.exec('ROLLBACK');
    db.close();
  }
}

/** How the side file's schema is brought up to date: sqlite-migrations.ts's migrateSqliteSide. */
export type SideMigration = (side: DatabaseSync, driver: SqliteDriver, storeId: string) => void;

export interface PreparedStatement {
  statement: StatementSync;
  /** Whether it yields rows (SELECT, RETURNING): `all()`, else `run()` for the change count. */
  returnsRows: boolean;
}

/**
 * Runs `setup` (a connection's pragmas) again while it fails busy, for up to `busyTimeoutMs`:
 * `PRAGMA journal_mode` can answer SQLITE_BUSY at once, without the busy handler, while another
 * process recovers the WAL a SIGKILLed one left; that is a wait, not an unusable file.
 */
function whileBusy(busyTimeoutMs: number, setup: () => void): void {
  const deadline = Date.now() + busyTimeoutMs;
  for (;;) {
    try {
      setup();
      return;
    } catch (error) {
      if (!isTransientStoreError(error) || Date.now() >= deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/**
 * A connection's own settings, main file and side file alike: waits `busyTimeoutMs` for another
 * process's lock, WAL, and an fsync at each commit (an in-memory database keeps its own journal
 * mode, whatever it is asked).
 */
function durableWal(db: DatabaseSync, busyTimeoutMs: number): void {
  db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = FULL');
}

/** `work` in one BEGIN IMMEDIATE … COMMIT on `db`, rolled back if it throws. */
function inWriteTransaction<T>(db: DatabaseSync, work: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = work();
    db.exec('COMMIT');
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}
