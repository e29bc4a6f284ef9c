import { SchemaTooNewError, StoreError, StoreUnavailableError, UsageError } from '../../errors.ts';
import type { JsonObject, JsonValue } from '../../json.ts';
import type {
  Checkpoint,
  DeadLetter,
  EffectEntry,
  EffectScope,
  FailureHistory,
  HolderInfo,
  InstanceInfo,
  InstanceStatus,
  LatestCheckpoint,
  Lease,
  NewDeadLetter,
  NewEvent,
  RunInfo,
  RunOutcome,
  RunProgress,
  ShardInfo,
  ShardInputs,
  Store,
  StoredEvent,
  Tx,
} from '../store.ts';
import { describeDriverError } from '../transient.ts';
import { MysqlCheckpoints } from './mysql-checkpoints.ts';
import { MysqlDeadLetters } from './mysql-dead-letters.ts';
import {
  boundIdleWait,
  createMysqlPool,
  DEFAULT_MYSQL_PREFIX,
  FROZEN_SESSION_MS,
  isFatalMysqlError,
  isTransientMysqlError,
  type MysqlConnection,
  type MysqlPool,
  type MysqlQueryable,
  RESTORE_WAIT,
  toResult,
  wrapMysqlError,
} from './mysql-driver.ts';
import { MysqlHistory } from './mysql-history.ts';
import { MysqlInstances } from './mysql-instances.ts';
import { MysqlJournal } from './mysql-journal.ts';
import { MysqlLeases } from './mysql-leases.ts';
import { migrateMysql } from './mysql-migrations.ts';
import { MysqlTx } from './mysql-tx.ts';

export interface MysqlStoreOptions {
  /** A `mysql://` URL (without `?prefix=`); the store creates (and closes) its own pool. */
  url?: string;
  /** A ready `mysql2/promise` pool; the store uses it and leaves it open on close. */
  pool?: MysqlPool;
  /** The database holding the tables: only names the migration lock (default: the URL's). */
  database?: string;
  /** Prefix of the store's table names; default `ckpt_`. */
  prefix?: string;
  /** Connections in the pool the store creates; default 4 (job tx, heartbeat, runner, spare). */
  maxConnections?: number;
  /** Name for messages: the URL without its password. */
  location?: string;
}

/**
 * The store for many workers on MySQL ≥ 8.0 or MariaDB ≥ 10.6, with PostgreSQL's semantics: a
 * claim takes a free or expired shard with `FOR UPDATE SKIP LOCKED` and bumps its fencing token;
 * a commit locks the shard row and compares tokens inside the same transaction as the checkpoint
 * and the job's `ctx.tx` writes, so a worker that lost its lease can move neither. Tables live in
 * the URL's database, named with a prefix; the job's `ctx.tx` SQL runs on the same database.
 */
export class MysqlStore implements Store {
  readonly location: string;
  readonly #options: MysqlStoreOptions;
  readonly #prefix: string;
  #pool: Promise<MysqlPool> | undefined;
  #closed = false;
  readonly #openTxs = new Set<MysqlTx>();
  readonly #instances: MysqlInstances;
  readonly #leases: MysqlLeases;
  readonly #checkpoints: MysqlCheckpoints;
  readonly #journal: MysqlJournal;
  readonly #deadLetters: MysqlDeadLetters;
  readonly #history: MysqlHistory;

  constructor(options: MysqlStoreOptions) {
    if (options.pool === undefined && options.url === undefined) throw new UsageError('a MySQL store needs a URL or a pool');
    this.#options = options;
    this.#prefix = options.prefix ?? DEFAULT_MYSQL_PREFIX;
    if (!/^[A-Za-z0-9_]{0,32}$/.test(this.#prefix)) {
      throw new UsageError(`the table prefix ${JSON.stringify(this.#prefix)} is not valid; use up to 32 letters, digits and '_' (e.g. ?prefix=ckpt_)`);
    }
    const p = this.#prefix;
    this.#instances = new MysqlInstances(p);
    this.#leases = new MysqlLeases(p);
    this.#checkpoints = new MysqlCheckpoints(p, this.#leases);
    this.#journal = new MysqlJournal(p);
    this.#deadLetters = new MysqlDeadLetters(p);
    this.#history = new MysqlHistory(p, this.#instances, this.#leases);
    this.location = options.location ?? (options.pool ? `mysql (tables ${p}*)` : String(options.url));
  }

  #getPool = (): Promise<MysqlPool> => {
    if (this.#closed) return Promise.reject(new StoreError(`the store ${this.location} is closed`));
    this.#pool ??= (async () => this.#options.pool ?? createMysqlPool({ url: String(this.#options.url), max: this.#options.maxConnections ?? 4 }))();
    return this.#pool;
  };

  /** One statement on any pooled connection (autocommit); driver errors become the store's. */
  get #any(): MysqlQueryable {
    return {
      query: async (sql, values) => {
        try {
          return toResult(await (await this.#getPool()).query(sql, values));
        } catch (error) {
          throw wrapMysqlError(error, this.location);
        }
      },
    };
  }

  /** Runs `work` in its own short transaction on one connection. */
  async #transaction<T>(work: (tx: MysqlQueryable) => Promise<T>): Promise<T> {
    let connection: MysqlConnection;
    try {
      connection = await (await this.#getPool()).getConnection();
    } catch (error) {
      throw wrapMysqlError(error, this.location);
    }
    const on: MysqlQueryable = { query: async (sql, values) => toResult(await connection.query(sql, values)) };
    let broken = false;
    try {
      // The store's own transactions are a few statements long; one frozen mid-way (its worker
      // stopped) must not keep a shard row locked from every other worker for long.
      await connection.query(boundIdleWait(FROZEN_SESSION_MS));
      await connection.query('START TRANSACTION');
      const result = await work(on);
      await connection.query('COMMIT');
      await connection.query(RESTORE_WAIT);
      return result;
    } catch (error) {
      broken = isFatalMysqlError(error) || isTransientMysqlError(error);
      if (!broken) {
        await connection.query('ROLLBACK').catch(() => {
          broken = true;
        });
        await connection.query(RESTORE_WAIT).catch(() => {
          broken = true;
        });
      }
      throw wrapMysqlError(error, this.location);
    } finally {
      if (broken) connection.destroy();
      else connection.release();
    }
  }

  async migrate(): Promise<void> {
    try {
      await migrateMysql(await this.#getPool(), { prefix: this.#prefix, database: this.#options.database ?? '', location: this.location });
    } catch (error) {
      if (error instanceof SchemaTooNewError || error instanceof StoreError || error instanceof UsageError) throw error;
      const wrapped = wrapMysqlError(error, this.location);
      if (wrapped instanceof StoreUnavailableError) throw wrapped;
      throw new StoreError(`cannot set up the MySQL store ${this.location}: ${describeDriverError(error)}; check the URL, the user's rights and the database`, {
        cause: error,
      });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const pool = this.#pool;
    for (const tx of this.#openTxs) await tx.end(false).catch(() => undefined);
    this.#closed = true;
    this.#pool = undefined;
    if (pool !== undefined && this.#options.pool === undefined) await (await pool.catch(() => undefined))?.end().catch(() => undefined);
  }

  instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    return this.#instances.instance(this.#any, job, paramsHash, meta);
  }
  resetInstance(instanceId: number, fromGeneration?: number): Promise<InstanceInfo> {
    return this.#instances.reset(this.#any, instanceId, fromGeneration);
  }
  listInstances(job?: string): Promise<InstanceInfo[]> {
    return this.#instances.list(this.#any, job);
  }
  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    await this.#instances.ensureShards(this.#any, instance, names, meta);
    return this.listShards(instance.id);
  }
  listShards(instanceId: number): Promise<ShardInfo[]> {
    return this.#instances.listShards(this.#any, instanceId);
  }
  setFingerprint(lease: Lease, fingerprint: string | null): Promise<void> {
    return this.#instances.setFingerprint(this.#any, lease, fingerprint);
  }
  setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    return this.#instances.setInputs(this.#any, lease, inputs);
  }
  completeIfDone(instanceId: number, generation: number): Promise<boolean> {
    return this.#instances.completeIfDone(this.#any, instanceId, generation);
  }

  async reapCrashed(instanceId: number, isDead: (worker: string) => boolean): Promise<RunInfo[]> {
    const reaped: RunInfo[] = [];
    for (const candidate of await this.#leases.reapCandidates(this.#any, instanceId)) {
      const dead = isDead(String(candidate.worker));
      if (!(Number(candidate.expired) === 1 || Number(candidate.superseded) === 1 || dead)) continue;
      const marked = await this.#transaction((tx) => this.#leases.reapRun(tx, candidate, dead));
      if (marked) reaped.push(marked);
    }
    return reaped;
  }
  claim(instance: InstanceInfo, worker: string, leaseMs: number): Promise<Lease | null> {
    return this.#transaction((tx) => this.#leases.claim(tx, instance, worker, leaseMs));
  }
  holders(instanceId: number): Promise<HolderInfo[]> {
    return this.#leases.holders(this.#any, instanceId);
  }
  heartbeat(lease: Lease, progress: RunProgress): Promise<boolean> {
    return this.#leases.heartbeat(this.#any, lease, progress);
  }
  latest(lease: Lease): Promise<LatestCheckpoint> {
    return this.#checkpoints.latest(this.#any, lease);
  }
  previousRun(lease: Lease): Promise<RunInfo | undefined> {
    return this.#checkpoints.previousRun(this.#any, lease);
  }

  async begin(lease: Lease): Promise<Tx> {
    await this.#getPool();
    const tx = new MysqlTx(lease, this.#getPool, this.location);
    this.#openTxs.add(tx);
    return tx;
  }

  async commit(tx: Tx, checkpoint: Omit<Checkpoint, 'seq' | 'createdAt'>, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    const mysqlTx = this.#ownTx(tx);
    try {
      mysqlTx.boundWait = true;
      const saved = await this.#checkpoints.write(mysqlTx, tx.lease, checkpoint, run);
      await mysqlTx.end(true);
      return saved;
    } catch (error) {
      await mysqlTx.end(false).catch(() => undefined);
      throw wrapMysqlError(mysqlTx.wrap(error), this.location);
    } finally {
      this.#openTxs.delete(mysqlTx);
    }
  }

  async rollback(tx: Tx): Promise<void> {
    const mysqlTx = this.#ownTx(tx);
    this.#openTxs.delete(mysqlTx);
    await mysqlTx.end(false);
  }

  #ownTx(tx: Tx): MysqlTx {
    if (!(tx instanceof MysqlTx) || !this.#openTxs.has(tx) || !tx.active) throw new StoreError('this transaction is not open on this store');
    return tx;
  }

  release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    return this.#transaction((tx) => this.#leases.release(tx, lease, outcome, run));
  }

  effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    return this.#journal.get(this.#any, scope, key);
  }
  effectIntent(scope: EffectScope, key: string): Promise<void> {
    return this.#journal.intent(this.#any, scope, key);
  }
  effectDone(scope: EffectScope, key: string, result: JsonValue | null): Promise<void> {
    return this.#journal.done(this.#any, scope, key, result);
  }
  effectFailed(scope: EffectScope, key: string): Promise<void> {
    return this.#journal.failed(this.#any, scope, key);
  }

  addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void> {
    return this.#deadLetters.add(this.#ownTx(tx), tx.lease, letter);
  }
  countDeadLetters(lease: Lease): Promise<number> {
    return this.#deadLetters.count(this.#any, lease);
  }
  listDeadLetters(instanceId: number): Promise<DeadLetter[]> {
    return this.#deadLetters.list(this.#any, instanceId);
  }
  async resolveDeadLetter(tx: Tx, id: number): Promise<boolean> {
    const mysqlTx = this.#ownTx(tx);
    try {
      const deleted = await this.#deadLetters.delete(mysqlTx, id);
      await mysqlTx.end(deleted);
      return deleted;
    } catch (error) {
      await mysqlTx.end(false).catch(() => undefined);
      throw wrapMysqlError(mysqlTx.wrap(error), this.location);
    } finally {
      this.#openTxs.delete(mysqlTx);
    }
  }
  noteDeadLetterRetry(id: number, error: string): Promise<void> {
    return this.#deadLetters.noteRetry(this.#any, id, error);
  }

  appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    return this.#history.appendEvents(this.#any, instanceId, generation, events);
  }
  listEvents(instanceId: number, options?: { afterId?: number; limit?: number }): Promise<StoredEvent[]> {
    return this.#history.listEvents(this.#any, instanceId, options);
  }
  failureHistory(instanceId: number): Promise<FailureHistory> {
    return this.#history.failureHistory(this.#any, instanceId);
  }
  listRuns(instanceId: number, options?: { limit?: number }): Promise<RunInfo[]> {
    return this.#history.listRuns(this.#any, instanceId, options);
  }
  status(instanceId: number): Promise<InstanceStatus> {
    return this.#history.status(this.#any, instanceId);
  }
}
