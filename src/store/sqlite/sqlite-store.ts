import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { FencedError, firstLine, SchemaTooNewError, StoreError } from '../../errors.ts';
import type { JsonObject, JsonValue } from '../../json.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum } from '../checksum.ts';
import { deadLetterValues, parseCheckpoint, type Row, RUN_PROGRESS_COLUMNS, toDeadLetter, toInstance, toRun, toShard } from '../rows.ts';
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
import { SqliteEffectJournal } from './sqlite-journal.ts';
import { sqliteMigrations } from './sqlite-migrations.ts';
import { type PreparedStatement, SqliteTx } from './sqlite-tx.ts';

export interface SqliteStoreOptions {
  /** How long a write waits for another process's lock before it fails, in ms. */
  busyTimeoutMs?: number;
}

/**
 * The embedded default store: one SQLite file in WAL mode, written with synchronous=FULL so a
 * committed checkpoint survives power loss. node:sqlite is synchronous, so every call runs to
 * its end before another starts: the single connection needs no further serialisation.
 *
 * The transaction a job writes into through `ctx.tx` is opened on its first use and holds the
 * file's one write lock until the checkpoint commits; other processes on the same file wait.
 */
export class SqliteStore implements Store {
  readonly location: string;
  readonly #path: string;
  readonly #options: SqliteStoreOptions;
  #db: DatabaseSync | undefined;
  #closed = false;
  #openTx: SqliteTx | undefined;
  #journal: SqliteEffectJournal | undefined;
  readonly #statements = new Map<string, StatementSync>();
  /** The job's own statements, kept apart from ours so a job's many never evict the store's. */
  readonly #jobStatements = new Map<string, PreparedStatement>();

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.#path = path === ':memory:' ? path : resolve(path);
    this.location = path;
    this.#options = options;
  }

  get #conn(): DatabaseSync {
    if (this.#closed) throw new StoreError(`the store ${this.location} is closed`);
    if (this.#db === undefined) this.#db = this.#open();
    return this.#db;
  }

  #open(): DatabaseSync {
    if (this.#path !== ':memory:') {
      try {
        mkdirSync(dirname(this.#path), { recursive: true });
      } catch (error) {
        throw new StoreError(
          `cannot create the directory ${dirname(this.#path)} for the store (${(error as NodeJS.ErrnoException).code ?? firstLine(error)}); choose a writable place with --store sqlite:PATH`,
          { cause: error },
        );
      }
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(this.#path);
    } catch (error) {
      throw new StoreError(`cannot open the store ${this.location}: ${firstLine(error)}; check that the path is writable`, { cause: error });
    }
    try {
      db.exec(`PRAGMA busy_timeout = ${this.#options.busyTimeoutMs ?? 10_000}`);
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = FULL');
      db.exec('PRAGMA foreign_keys = ON');
    } catch (error) {
      db.close();
      throw this.#unusable(error, 'use');
    }
    return db;
  }

  /** What to tell the user when the file cannot serve as a store. */
  #unusable(error: unknown, verb: string): StoreError {
    const message = firstLine(error);
    if (/not a database|file is encrypted/i.test(message)) {
      return new StoreError(`${this.location} is not a checkpointed store (not a SQLite database); point --store at another file`, { cause: error });
    }
    if (/malformed|corrupt/i.test(message)) {
      return new StoreError(`the store ${this.location} is damaged (${message}); restore it from a backup or point --store at another file`, { cause: error });
    }
    return new StoreError(`cannot ${verb} the store ${this.location}: ${message}; check that the file and its directory are writable`, { cause: error });
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#conn.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
  #all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.#statement(sql).all(...params) as Row[];
  }
  #get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.#statement(sql).get(...params) as Row | undefined;
  }
  #run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.#statement(sql).run(...params).changes);
  }

  /** Runs `work` in a write transaction, or inside the job's open one (it commits with it). */
  #write<T>(work: () => T): T {
    const db = this.#conn;
    if (db.isTransaction) return work();
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

  async migrate(): Promise<void> {
    const db = this.#conn;
    const supported = sqliteMigrations.at(-1)?.id ?? 0;
    // Already current (the usual case): only read, so opening a store that another process is
    // writing through ctx.tx (holding SQLite's one write lock until its checkpoint) does not wait.
    let current: number | undefined;
    try {
      const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ckpt_schema'").get() !== undefined;
      if (known) current = Number(db.prepare('SELECT max(version) AS version FROM ckpt_schema').get()?.version ?? 0);
    } catch (error) {
      throw this.#unusable(error, 'read');
    }
    if (current !== undefined && current > supported) throw new SchemaTooNewError(current, supported, this.location);
    if (current === supported) return;
    try {
      db.exec('CREATE TABLE IF NOT EXISTS ckpt_schema (version INTEGER NOT NULL)');
    } catch (error) {
      throw this.#unusable(error, 'write');
    }
    this.#write(() => {
      const row = this.#get('SELECT max(version) AS version FROM ckpt_schema');
      const current = Number(row?.version ?? 0);
      if (current > supported) throw new SchemaTooNewError(current, supported, this.location);
      for (const migration of sqliteMigrations) {
        if (migration.id <= current) continue;
        db.exec(migration.sql);
        this.#run('INSERT INTO ckpt_schema (version) VALUES (?)', migration.id);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const db = this.#db;
    this.#db = undefined;
    this.#statements.clear();
    this.#jobStatements.clear();
    this.#journal?.close();
    this.#journal = undefined;
    if (db === undefined) return;
    if (db.isTransaction) db.exec('ROLLBACK');
    db.close();
  }

  async instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    return this.#write(() => {
      const now = Date.now();
      this.#run(
        'INSERT INTO instances (job, params_hash, params, version, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (job, params_hash) DO NOTHING',
        job,
        paramsHash,
        JSON.stringify(meta.params),
        meta.version,
        now,
      );
      return toInstance(this.#get('SELECT * FROM instances WHERE job = ? AND params_hash = ?', job, paramsHash) as Row);
    });
  }

  async resetInstance(instanceId: number, fromGeneration?: number): Promise<InstanceInfo> {
    return this.#write(() => {
      this.#run(
        "UPDATE instances SET generation = generation + 1, status = 'open', completed_at = NULL WHERE id = ? AND (? IS NULL OR generation = ?)",
        instanceId,
        fromGeneration ?? null,
        fromGeneration ?? null,
      );
      return toInstance(this.#get('SELECT * FROM instances WHERE id = ?', instanceId) as Row);
    });
  }

  async listInstances(job?: string): Promise<InstanceInfo[]> {
    const rows =
      job === undefined ? this.#all('SELECT * FROM instances ORDER BY id DESC') : this.#all('SELECT * FROM instances WHERE job = ? ORDER BY id DESC', job);
    return rows.map(toInstance);
  }

  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    const known = new Set(
      this.#all('SELECT name FROM shards WHERE instance_id = ? AND generation = ?', instance.id, instance.generation).map((row) => String(row.name)),
    );
    const missing = names.filter((name) => !known.has(name));
    if (missing.length > 0) {
      this.#write(() => {
        const now = Date.now();
        const insert = this.#conn.prepare(
          'INSERT INTO shards (instance_id, generation, name, version, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id, generation, name) DO NOTHING',
        );
        for (const name of missing) insert.run(instance.id, instance.generation, name, meta.version, now);
      });
    }
    return this.listShards(instance.id);
  }

  async listShards(instanceId: number): Promise<ShardInfo[]> {
    return this.#all(
      'SELECT s.* FROM shards s JOIN instances i ON i.id = s.instance_id AND i.generation = s.generation WHERE s.instance_id = ? ORDER BY s.id',
      instanceId,
    ).map(toShard);
  }

  async setFingerprint(lease: Lease, fingerprint: string | null): Promise<void> {
    this.#write(() => {
      this.#run('UPDATE shards SET fingerprint = ? WHERE id = ? AND lease_token = ?', fingerprint, lease.shardId, lease.token);
    });
  }

  async setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    this.#write(() => {
      this.#run(
        'UPDATE shards SET fingerprint = ?, version = ?, params_hash = ? WHERE id = ? AND lease_token = ?',
        inputs.fingerprint,
        inputs.version,
        inputs.paramsHash,
        lease.shardId,
        lease.token,
      );
    });
  }

  async reapCrashed(instanceId: number, isDead: (worker: string) => boolean): Promise<RunInfo[]> {
    const now = Date.now();
    // Read first: a healthy instance needs no write, so a second process never waits on the lock.
    const candidates = this.#all(
      `SELECT r.*, s.lease_expires_at, s.run_id AS shard_run FROM runs r JOIN shards s ON s.id = r.shard_id
       WHERE r.instance_id = ? AND r.outcome = 'running'`,
      instanceId,
    ).filter((row) => Number(row.lease_expires_at) < now || Number(row.shard_run) !== Number(row.id) || isDead(String(row.worker)));
    if (candidates.length === 0) return [];
    return this.#write(() => {
      const reaped: RunInfo[] = [];
      for (const row of candidates) {
        const changed = this.#run("UPDATE runs SET outcome = 'crashed', ended_at = heartbeat_at WHERE id = ? AND outcome = 'running'", Number(row.id));
        if (changed === 0) continue;
        this.#run(
          "UPDATE shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END WHERE id = ? AND run_id = ?",
          Number(row.shard_id),
          Number(row.id),
        );
        reaped.push(toRun(this.#get('SELECT * FROM runs WHERE id = ?', Number(row.id)) as Row));
      }
      return reaped;
    });
  }

  async claim(instance: InstanceInfo, worker: string, leaseMs: number): Promise<Lease | null> {
    const free = `SELECT * FROM shards WHERE instance_id = ? AND generation = ? AND status != 'completed' AND (lease_owner IS NULL OR lease_expires_at < ?) ORDER BY id LIMIT 1`;
    if (this.#get(free, instance.id, instance.generation, Date.now()) === undefined) return null;
    return this.#write(() => {
      const now = Date.now();
      const shard = this.#get(free, instance.id, instance.generation, now);
      if (shard === undefined) return null;
      const shardId = Number(shard.id);
      const token = Number(shard.lease_token) + 1;
      // A run still marked running on an expired lease is a crashed (or paused) worker: fenced from now on.
      this.#run("UPDATE runs SET outcome = 'crashed', ended_at = heartbeat_at WHERE shard_id = ? AND outcome = 'running'", shardId);
      const run = this.#conn
        .prepare(
          'INSERT INTO runs (instance_id, generation, shard_id, shard, worker, token, started_at, heartbeat_at, start_processed, mark_processed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(instance.id, instance.generation, shardId, String(shard.name), worker, token, now, now, Number(shard.processed), Number(shard.processed));
      const runId = Number(run.lastInsertRowid);
      this.#run(
        "UPDATE shards SET lease_owner = ?, lease_token = ?, lease_expires_at = ?, run_id = ?, status = 'running', updated_at = ? WHERE id = ?",
        worker,
        token,
        now + leaseMs,
        runId,
        now,
        shardId,
      );
      return { instanceId: instance.id, generation: instance.generation, shardId, shard: String(shard.name), worker, token, runId, leaseMs };
    });
  }

  async holders(instanceId: number): Promise<HolderInfo[]> {
    return this.#all(
      `SELECT s.name, s.lease_owner, s.lease_expires_at FROM shards s JOIN instances i ON i.id = s.instance_id AND i.generation = s.generation
       WHERE s.instance_id = ? AND s.status != 'completed' AND s.lease_owner IS NOT NULL AND s.lease_expires_at >= ? ORDER BY s.id`,
      instanceId,
      Date.now(),
    ).map((row) => ({ shard: String(row.name), worker: String(row.lease_owner), expiresAt: Number(row.lease_expires_at) }));
  }

  async heartbeat(lease: Lease, progress: RunProgress): Promise<boolean> {
    return this.#write(() => {
      const now = Date.now();
      const held = this.#run('UPDATE shards SET lease_expires_at = ? WHERE id = ? AND lease_token = ?', now + lease.leaseMs, lease.shardId, lease.token);
      this.#updateRun(lease.runId, progress, now);
      return held === 1;
    });
  }

  #updateRun(runId: number, progress: RunProgress, now: number, outcome?: RunOutcome): void {
    const sets = ['heartbeat_at = ?'];
    const values: SQLInputValue[] = [now];
    for (const [key, column] of RUN_PROGRESS_COLUMNS) {
      const value = progress[key];
      if (value === undefined) continue;
      sets.push(`${column} = ?`);
      values.push(value as SQLInputValue);
    }
    if (progress.resumedFrom !== undefined) {
      sets.push('resumed_from = ?');
      values.push(JSON.stringify(progress.resumedFrom));
    }
    if (progress.stats !== undefined) {
      sets.push('stats = ?');
      values.push(JSON.stringify(progress.stats));
    }
    if (outcome !== undefined) {
      sets.push('outcome = ?', 'ended_at = ?');
      values.push(outcome, now);
    }
    this.#run(`UPDATE runs SET ${sets.join(', ')} WHERE id = ?`, ...values, runId);
  }

  async latest(lease: Lease): Promise<LatestCheckpoint> {
    const rows = this.#all('SELECT * FROM checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?', lease.shardId, CHECKPOINT_HISTORY);
    const corrupt: number[] = [];
    for (const row of rows) {
      const checkpoint = parseCheckpoint(row);
      if (
        checkpoint !== undefined &&
        checkpointChecksum(lease.shardId, checkpoint.seq, checkpoint.position, checkpoint.state, checkpoint.processed) === row.checksum
      ) {
        return { checkpoint, corrupt };
      }
      corrupt.push(Number(row.seq));
    }
    return { checkpoint: undefined, corrupt };
  }

  async previousRun(lease: Lease): Promise<RunInfo | undefined> {
    const row = this.#get('SELECT * FROM runs WHERE shard_id = ? AND id < ? ORDER BY id DESC LIMIT 1', lease.shardId, lease.runId);
    return row === undefined ? undefined : toRun(row);
  }

  async begin(lease: Lease): Promise<Tx> {
    if (this.#openTx?.active) throw new StoreError('a SQLite store runs one shard transaction at a time per process');
    const tx = new SqliteTx(lease, this.#conn, this.#jobStatements);
    this.#openTx = tx;
    return tx;
  }

  async commit(tx: Tx, checkpoint: Omit<Checkpoint, 'seq' | 'createdAt'>, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    const sqliteTx = this.#ownTx(tx);
    sqliteTx.ensureBegun();
    const db = this.#conn;
    try {
      const { lease } = tx;
      const now = Date.now();
      const shard = this.#get('SELECT lease_token, checkpoint_seq FROM shards WHERE id = ?', lease.shardId);
      if (shard === undefined || Number(shard.lease_token) !== lease.token) {
        throw new FencedError(
          `shard ${lease.shard} was claimed by another worker (fencing token ${lease.token} is stale); this worker's uncommitted work is discarded`,
          { shard: lease.shard },
        );
      }
      const seq = Number(shard.checkpoint_seq) + 1;
      const checksum = checkpointChecksum(lease.shardId, seq, checkpoint.position, checkpoint.state, checkpoint.processed);
      this.#run(
        'INSERT INTO checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        lease.shardId,
        seq,
        JSON.stringify(checkpoint.position),
        JSON.stringify(checkpoint.state),
        checkpoint.processed,
        lease.runId,
        now,
        checksum,
      );
      this.#run('DELETE FROM checkpoints WHERE shard_id = ? AND seq <= ?', lease.shardId, seq - CHECKPOINT_HISTORY);
      const status = run.complete ? 'completed' : 'running';
      const expires = run.complete ? 0 : now + lease.leaseMs;
      const owner = run.complete ? null : lease.worker;
      this.#run(
        'UPDATE shards SET checkpoint_seq = ?, processed = ?, status = ?, lease_owner = ?, lease_expires_at = ?, updated_at = ? WHERE id = ? AND lease_token = ?',
        seq,
        checkpoint.processed,
        status,
        owner,
        expires,
        now,
        lease.shardId,
        lease.token,
      );
      this.#updateRun(lease.runId, run, now, run.complete ? 'completed' : undefined);
      db.exec('COMMIT');
      return { seq, position: checkpoint.position, state: checkpoint.state, processed: checkpoint.processed, createdAt: now };
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw error;
    } finally {
      sqliteTx.end();
    }
  }

  async rollback(tx: Tx): Promise<void> {
    const sqliteTx = this.#ownTx(tx);
    if (sqliteTx.begun && this.#db?.isTransaction) this.#db.exec('ROLLBACK');
    sqliteTx.end();
  }

  #ownTx(tx: Tx): SqliteTx {
    if (!(tx instanceof SqliteTx) || tx !== this.#openTx || !tx.active) throw new StoreError('this transaction is not open on this store');
    return tx;
  }

  async release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    this.#write(() => {
      const now = Date.now();
      this.#run(
        "UPDATE shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END, updated_at = ? WHERE id = ? AND lease_token = ?",
        now,
        lease.shardId,
        lease.token,
      );
      this.#updateRun(lease.runId, run, now, outcome);
    });
  }

  async completeIfDone(instanceId: number, generation: number): Promise<boolean> {
    return this.#write(() => {
      const changed = this.#run(
        `UPDATE instances SET status = 'completed', completed_at = ? WHERE id = ? AND generation = ? AND status = 'open'
         AND NOT EXISTS (SELECT 1 FROM shards WHERE instance_id = ? AND generation = ? AND status != 'completed')`,
        Date.now(),
        instanceId,
        generation,
        instanceId,
        generation,
      );
      const row = this.#get('SELECT status FROM instances WHERE id = ?', instanceId);
      return changed > 0 || row?.status === 'completed';
    });
  }

  get #effects(): SqliteEffectJournal {
    if (this.#journal === undefined) {
      const storeId = String(this.#get("SELECT value FROM ckpt_meta WHERE key = 'store_id'")?.value ?? 'unknown');
      this.#journal = new SqliteEffectJournal(this.#path === ':memory:' ? ':memory:' : `${this.#path}.effects`, storeId);
    }
    return this.#journal;
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    return this.#effects.get(scope, key);
  }
  async effectIntent(scope: EffectScope, key: string): Promise<void> {
    this.#effects.intent(scope, key);
  }
  async effectDone(scope: EffectScope, key: string, result: JsonValue | null): Promise<void> {
    this.#effects.done(scope, key, result);
  }
  async effectFailed(scope: EffectScope, key: string): Promise<void> {
    this.#effects.failed(scope, key);
  }

  async addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void> {
    this.#ownTx(tx).ensureBegun();
    const { lease } = tx;
    this.#run(
      'INSERT INTO dead_letters (instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ...deadLetterValues(lease, letter),
      Date.now(),
    );
  }

  async countDeadLetters(lease: Lease): Promise<number> {
    return Number(this.#get('SELECT count(*) AS n FROM dead_letters WHERE shard_id = ? AND generation = ?', lease.shardId, lease.generation)?.n ?? 0);
  }

  async listDeadLetters(instanceId: number): Promise<DeadLetter[]> {
    return this.#all(
      'SELECT d.* FROM dead_letters d JOIN instances i ON i.id = d.instance_id AND i.generation = d.generation WHERE d.instance_id = ? ORDER BY d.id',
      instanceId,
    ).map(toDeadLetter);
  }

  async resolveDeadLetter(tx: Tx, id: number): Promise<boolean> {
    const sqliteTx = this.#ownTx(tx);
    sqliteTx.ensureBegun();
    const db = this.#conn;
    try {
      if (this.#run('DELETE FROM dead_letters WHERE id = ?', id) === 0) {
        db.exec('ROLLBACK');
        return false;
      }
      db.exec('COMMIT');
      return true;
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw error;
    } finally {
      sqliteTx.end();
    }
  }

  async noteDeadLetterRetry(id: number, error: string): Promise<void> {
    this.#write(() => this.#run('UPDATE dead_letters SET error = ?, attempts = attempts + 1 WHERE id = ?', error, id));
  }

  async appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    this.#write(() => {
      const insert = this.#conn.prepare('INSERT INTO events (instance_id, generation, run_id, shard, type, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)');
      for (const event of events)
        insert.run(instanceId, generation, event.runId ?? null, event.shard ?? null, event.type, event.at ?? Date.now(), JSON.stringify(event.data));
    });
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const rows = this.#all('SELECT * FROM events WHERE instance_id = ? AND id > ? ORDER BY id LIMIT ?', instanceId, options.afterId ?? 0, options.limit ?? -1);
    return rows.map((row) => ({
      id: Number(row.id),
      instanceId: Number(row.instance_id),
      generation: Number(row.generation),
      runId: row.run_id === null ? null : Number(row.run_id),
      shard: row.shard === null ? null : String(row.shard),
      type: String(row.type),
      at: Number(row.at),
      data: JSON.parse(String(row.data)) as JsonObject,
    }));
  }

  async failureHistory(instanceId: number): Promise<FailureHistory> {
    const row = this.#get(
      `SELECT coalesce(sum(max(0, coalesce(ended_at, heartbeat_at) - started_at)), 0) AS running_ms,
              coalesce(sum(outcome = 'crashed'), 0) AS crashed
       FROM runs WHERE instance_id = ?`,
      instanceId,
    ) as Row;
    return { runningMs: Number(row.running_ms), crashed: Number(row.crashed) };
  }

  async listRuns(instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    return this.#all('SELECT * FROM runs WHERE instance_id = ? ORDER BY id DESC LIMIT ?', instanceId, options.limit ?? -1).map(toRun);
  }

  async status(instanceId: number): Promise<InstanceStatus> {
    const instance = toInstance(this.#get('SELECT * FROM instances WHERE id = ?', instanceId) as Row);
    const shards = await this.listShards(instanceId);
    const last = this.#get(
      'SELECT max(c.created_at) AS at FROM checkpoints c JOIN shards s ON s.id = c.shard_id WHERE s.instance_id = ? AND s.generation = ?',
      instanceId,
      instance.generation,
    );
    return {
      instance,
      shards: {
        total: shards.length,
        completed: shards.filter((shard) => shard.status === 'completed').length,
        running: shards.filter((shard) => shard.status === 'running').length,
      },
      processed: shards.reduce((sum, shard) => sum + shard.processed, 0),
      lastCheckpointAt: last?.at == null ? null : Number(last.at),
      holders: await this.holders(instanceId),
    };
  }
}
