import { StoreError } from '../../errors.ts';
import type { ChainedGenerations } from '../audit-chain.ts';
import { idleWait } from '../idle-wait.ts';
import type { Row } from '../rows.ts';
import type { ChainHead, JournalFence, JournalOutcome, JournalWrite, Lease, NewEvent, Tx } from '../store.ts';
import type { Dialect } from './dialect.ts';

/** One statement's result, the same shape for a SELECT and for a write, on every server. */
export interface SqlResult {
  rows: Row[];
  /** Rows a write matched (MySQL connects with FOUND_ROWS; PostgreSQL's row count); a SELECT's rows. */
  affectedRows: number;
  /** The id an INSERT gave its row where the server says so without RETURNING (MySQL); else 0. */
  insertId: number;
}

/** Something that runs one statement: the pool, a store transaction, or the job's. */
export interface SqlQueryable {
  query(sql: string, values?: unknown[]): Promise<SqlResult>;
}

/**
 * The job's unit of work on a SQL server: one pooled connection, begun on first use and held
 * until the checkpoint commits or rolls back (postgres-tx.ts, mysql-tx.ts).
 */
export interface SqlJobTx extends Tx {
  readonly active: boolean;
  /** Runs one statement in the transaction (begun on first use); driver errors as the store's. */
  query(sql: string, values?: unknown[]): Promise<SqlResult>;
  /** From the commit's first lock on: past `ms` idle the server ends the session (the worker is frozen). */
  limitIdle(ms: number): Promise<void>;
  /** Called by each heartbeat: keeps an idle transaction of a live worker from looking lost. */
  touch(): void;
  /** Commit (or roll back) if begun, and give the connection back; safe to call twice. */
  end(commit: boolean): Promise<void>;
  /** A driver error as the runner should see it (a lock wait past its bound, a lost connection). */
  wrap(error: unknown): unknown;
}

/** Whether this process's chain key may extend an instance's chain (chain-key-check.ts). */
export interface ChainKeyGuard {
  /** Throws StoreIdentityError unless the key may link from `head`, read on `on` under the head's lock. */
  check(on: SqlQueryable, instanceId: number, head: ChainHead): Promise<void>;
  /** `head` was linked by this process. */
  linked(instanceId: number, head: ChainHead): void;
}

/**
 * What the shared store flows (src/store/sql/) need of a server's driver: one-statement queries
 * and short transactions with the store's error handling, and the job's open transactions.
 * Statements are written with `?`; the driver puts them in its dialect's placeholders.
 */
export interface SqlDriver {
  readonly dialect: Dialect;
  /** Name for messages: the URL without its password. */
  readonly location: string;
  /** Prefix of every table name: `"schema".` on PostgreSQL, `ckpt_` on MySQL. */
  readonly prefix: string;
  /** The job transactions still open, so close can end them and heartbeats can touch them. */
  readonly openTxs: Set<SqlJobTx>;
  /** The key of the event log's hash chain, if any. */
  readonly chainKey: () => Buffer | undefined;
  /** Whether that key may extend an instance's chain, checked before linking from a head read under its lock. */
  readonly chainKeyCheck: ChainKeyGuard;
  /** The database's clock minus this machine's (events are stamped on the database's). */
  readonly clockOffsetMs: number;
  /** One statement on any pooled connection (autocommit). */
  run(sql: string, values?: unknown[]): Promise<SqlResult>;
  /** The rows of one statement on any pooled connection. */
  rows(sql: string, values?: unknown[]): Promise<Row[]>;
  /** Runs `work` in its own short transaction on one connection. */
  transaction<T>(work: (on: SqlQueryable) => Promise<T>): Promise<T>;
  /** The database's clock now (epoch ms), also measuring this machine's offset from it. */
  syncClock(): Promise<number>;
  /** "Unreachable" driver errors become StoreUnavailableError, which the retry wrapper retries. */
  wrap(error: unknown): unknown;
  close(): Promise<void>;
}

/** How idle workers learn that an instance changed (a shard released or reaped). */
export interface SqlChanges {
  /** Wait until the instance may have changed, `ms` at the most. */
  wait(instanceId: number, ms: number, signal?: AbortSignal): Promise<void>;
  /** Announce, inside `on`'s transaction, that a shard of the instance was freed. */
  notify(on: SqlQueryable, instanceId: number): Promise<void>;
  /** This worker took a shard: it waits for no change now. */
  claimed(): void;
}

/** No announcements: an idle worker waits out the runner's poll interval. */
export const pollForChanges: SqlChanges = {
  wait: (_instanceId, ms, signal) => idleWait(ms, signal),
  notify: async () => undefined,
  claimed: () => undefined,
};

/**
 * What a server writes its own fastest way (postgres-journal.ts: CTEs over arrays; mysql-journal.ts:
 * multi-row statements in one round trip); the batch's flow around it is SqlJournal's.
 */
export interface ServerJournal {
  /** The chain head this process last wrote, per instance: the fast way links from it. */
  readonly heads: Map<number, ChainHead>;
  /**
   * The usual batch (fastEligible, a head cached), on guesses: the lease still holds the shard
   * (when fenced), the chain head is still `from`, and every claim finds no entry. Writes the
   * entries and `chained` (every event of the batch, linked from `from`) and moves the head to its
   * end; if a guess did not hold, nothing of it stays and it answers false: the locked way decides.
   */
  fast(instanceId: number, writes: readonly JournalWrite[], fence: JournalFence | undefined, from: ChainHead, chained: ChainedGenerations): Promise<boolean>;
  /**
   * The batch's entries in the caller's transaction, its fence and limits applied: takes the chain
   * head's row lock and writes them; a claim that finds an entry writes none and is answered it.
   * The outcomes (one per write) and the head as locked.
   */
  writeEntries(on: SqlQueryable, instanceId: number, writes: readonly JournalWrite[]): Promise<{ outcomes: JournalOutcome[]; head: ChainHead }>;
  /** Inserts `chained` (ids in its order) and moves the head to its end, in the caller's transaction. */
  appendEvents(on: SqlQueryable, instanceId: number, chained: ChainedGenerations): Promise<void>;
}

/** How a server's journal table finds a key: PostgreSQL by the key, MySQL by its sha256 (a key can be longer than an index allows). */
export type EffectKey = (key: string) => { column: string; value: string };

/** What each server does its own way, beside its driver: the rest of the store is the shared flows. */
export interface SqlBackend<Pool> {
  /** Brings the schema up to date (numbered migrations, the backend's own). */
  migrate(): Promise<void>;
  /** The job's transaction class: made per lease on a pool that is ready, begun on first use. */
  Tx: new (
    lease: Lease,
    pool: () => Promise<Pool>,
    location: string,
  ) => SqlJobTx;
  /** Link `events` into the instance's chain and insert them, in the backend's own short transaction. */
  appendChained(instanceId: number, generation: number, events: readonly NewEvent[]): Promise<void>;
  /** The same inside the caller's transaction on `on`: takes the chain head's row lock (held to its COMMIT). */
  appendChainedOn(on: SqlQueryable, instanceId: number, generation: number, events: readonly NewEvent[]): Promise<void>;
  /** The effect journal's batches in the server's fastest form (the flow around them: sql-journal.ts). */
  journal: ServerJournal;
  /** How the journal finds a key's entry: the column and the value to match. */
  effectKey: EffectKey;
  changes: SqlChanges;
}

/** The store's own open transaction behind `tx`, or a StoreError (committed, rolled back, another store's). */
export function ownTx(driver: SqlDriver, tx: Tx): SqlJobTx {
  const own = tx as SqlJobTx;
  if (!driver.openTxs.has(own) || !own.active) throw new StoreError('this transaction is not open on this store');
  return own;
}

/** The job's transaction as a queryable, with the store's error handling. */
export function inTx(driver: SqlDriver, tx: Tx): SqlQueryable {
  const jobTx = ownTx(driver, tx);
  return {
    query: async (sql, values) => {
      try {
        return await jobTx.query(driver.dialect.parameters(sql), values);
      } catch (error) {
        throw driver.wrap(error);
      }
    },
  };
}

/**
 * Runs the last statements of the job's transaction, then commits it, or rolls it back when
 * `work` answers `commit: false` or throws; either way the transaction is over.
 */
export async function finishTx<T>(driver: SqlDriver, tx: Tx, work: (on: SqlQueryable) => Promise<{ result: T; commit: boolean }>): Promise<T> {
  const jobTx = ownTx(driver, tx);
  try {
    const { result, commit } = await work(inTx(driver, tx));
    await jobTx.end(commit);
    return result;
  } catch (error) {
    await jobTx.end(false).catch(() => undefined);
    throw driver.wrap(jobTx.wrap(error));
  } finally {
    driver.openTxs.delete(jobTx);
  }
}
