import { existsSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { StoreError } from '../../errors.ts';
import { idleWait } from '../idle-wait.ts';
import { FREE_SHARD_SQL, REAPED_OUTCOME_SQL, type Row, RUN_PROGRESS_COLUMNS, toLiveRun, toRun } from '../rows.ts';
import type { HolderInfo, InstanceInfo, Lease, LeaseStore, LiveRun, ProgressMark, RunInfo, RunOutcome, RunProgress } from '../store.ts';
import type { SQLInputValue, SqliteDriver } from './sqlite-driver.ts';

/**
 * Leases and fencing in a SQLite file, shared by the processes on one machine.
 *
 * Invariant: a shard's lease_token only grows, and every write on behalf of a lease (heartbeat,
 * checkpoint, release, inputs) names the token it holds; a write with an older token changes
 * nothing, and a checkpoint with one throws FencedError (sqlite-checkpoints.ts).
 */
export class SqliteLeases implements LeaseStore {
  readonly #db: SqliteDriver;
  readonly #marks: SqliteProgressMarks;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
    this.#marks = new SqliteProgressMarks(driver);
  }

  async markProgress(lease: Lease, mark: ProgressMark): Promise<void> {
    this.#marks.write(lease.runId, mark);
  }

  /** Copies a dead run's last progress mark from the side file into its row, before it is reaped. */
  #foldMark(runId: number): void {
    const mark = this.#marks.read(runId);
    if (mark !== undefined) this.#db.run('UPDATE runs SET mark_ceiling = ?, mark_step = ? WHERE id = ?', mark.ceiling, mark.step, runId);
  }

  async reapCrashed(
    instanceId: number,
    isDead: (worker: string, node: string | null) => boolean,
    isAlive: (worker: string, node: string | null) => boolean = () => false,
  ): Promise<RunInfo[]> {
    const now = Date.now();
    // Read first: a healthy instance needs no write, so a second process never waits on the lock.
    const candidates = this.#db
      .all(
        `SELECT r.*, s.lease_expires_at, s.run_id AS shard_run FROM runs r JOIN shards s ON s.id = r.shard_id
         WHERE r.instance_id = ? AND r.outcome = 'running'`,
        instanceId,
      )
      .filter((row) => {
        const node = row.worker_node === null ? null : String(row.worker_node);
        if (isAlive(String(row.worker), node)) return false;
        return Number(row.lease_expires_at) < now || Number(row.shard_run) !== Number(row.id) || isDead(String(row.worker), node);
      });
    if (candidates.length === 0) return [];
    // Each reaped run gets its `run:crashed` event next: where the chain is keyed and the key is
    // missing here, that event cannot be linked (noChainKey throws), so nothing is marked either.
    this.#db.chainKey();
    return this.#db.write(() => {
      const reaped: RunInfo[] = [];
      for (const row of candidates) {
        this.#foldMark(Number(row.id));
        const changed = this.#db.run(
          `UPDATE runs SET outcome = ${REAPED_OUTCOME_SQL}, ended_at = heartbeat_at WHERE id = ? AND outcome = 'running'`,
          Number(row.id),
        );
        if (changed === 0) continue;
        this.#db.run(`UPDATE shards SET ${FREE_SHARD_SQL} WHERE id = ? AND run_id = ?`, Number(row.shard_id), Number(row.id));
        reaped.push(toRun(this.#db.get('SELECT * FROM runs WHERE id = ?', Number(row.id)) as Row));
      }
      return reaped;
    });
  }

  async claim(instance: InstanceInfo, worker: string, leaseMs: number, node?: string): Promise<Lease | null> {
    const free = `SELECT * FROM shards WHERE instance_id = ? AND generation = ? AND status != 'completed' AND (lease_owner IS NULL OR lease_expires_at < ?) ORDER BY id LIMIT 1`;
    // Read first: nothing to claim takes no write lock. Then again under the lock.
    if (this.#db.get(free, instance.id, instance.generation, Date.now()) === undefined) return null;
    return this.#db.write(() => {
      const now = Date.now();
      const shard = this.#db.get(free, instance.id, instance.generation, now);
      if (shard === undefined) return null;
      const shardId = Number(shard.id);
      const token = Number(shard.lease_token) + 1;
      // A run still marked running on an expired lease is a crashed (or paused) worker: fenced from now on.
      for (const dead of this.#db.all("SELECT id FROM runs WHERE shard_id = ? AND outcome = 'running'", shardId)) this.#foldMark(Number(dead.id));
      this.#db.run(`UPDATE runs SET outcome = ${REAPED_OUTCOME_SQL}, ended_at = heartbeat_at WHERE shard_id = ? AND outcome = 'running'`, shardId);
      const run = this.#db
        .statement(
          'INSERT INTO runs (instance_id, generation, shard_id, shard, worker, worker_node, token, started_at, heartbeat_at, start_processed, mark_processed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(
          instance.id,
          instance.generation,
          shardId,
          String(shard.name),
          worker,
          node ?? null,
          token,
          now,
          now,
          Number(shard.processed),
          Number(shard.processed),
        );
      const runId = Number(run.lastInsertRowid);
      this.#db.run(
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
    return this.#db
      .all(
        `SELECT s.name, s.lease_owner, s.lease_expires_at, r.worker_node FROM shards s JOIN instances i ON i.id = s.instance_id AND i.generation = s.generation
         LEFT JOIN runs r ON r.id = s.run_id AND r.token = s.lease_token WHERE s.instance_id = ? AND s.status != 'completed' AND s.lease_owner IS NOT NULL AND s.lease_expires_at >= ? ORDER BY s.id`,
        instanceId,
        Date.now(),
      )
      .map((row) => ({
        shard: String(row.name),
        worker: String(row.lease_owner),
        node: row.worker_node === null ? null : String(row.worker_node),
        expiresAt: Number(row.lease_expires_at),
      }));
  }

  async leaseShard(
    instance: Pick<InstanceInfo, 'id' | 'generation'>,
    shard: { id: number; name: string },
    worker: string,
    leaseMs: number,
  ): Promise<Lease | null> {
    return this.#db.write(() => {
      const now = Date.now();
      const taken = this.#db.run(
        `UPDATE shards SET lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = ?, run_id = NULL, updated_at = ?
         WHERE id = ? AND instance_id = ? AND generation = ? AND (lease_owner IS NULL OR lease_expires_at < ?)`,
        worker,
        now + leaseMs,
        now,
        shard.id,
        instance.id,
        instance.generation,
        now,
      );
      if (taken === 0) return null;
      const token = Number(this.#db.get('SELECT lease_token FROM shards WHERE id = ?', shard.id)?.lease_token);
      return { instanceId: instance.id, generation: instance.generation, shardId: shard.id, shard: shard.name, worker, token, runId: 0, leaseMs };
    });
  }

  async liveRunOrFence(runId: number): Promise<LiveRun | undefined> {
    const held = `SELECT s.id, s.name, s.lease_owner, s.lease_expires_at, r.worker_node FROM runs r JOIN shards s ON s.id = r.shard_id
       WHERE r.id = ? AND s.run_id = r.id AND s.lease_token = r.token AND s.lease_owner IS NOT NULL`;
    const row = this.#db.get(held, runId);
    if (row === undefined) return undefined;
    if (Number(row.lease_expires_at) >= Date.now()) return toLiveRun(runId, row);
    // Expired: ended under the write lock, if still so (a heartbeat may have just renewed it).
    return this.#db.write(() => {
      const now = Date.now();
      const current = this.#db.get(held, runId);
      if (current === undefined) return undefined;
      if (Number(current.lease_expires_at) >= now) return toLiveRun(runId, current);
      this.#db.run(`UPDATE shards SET lease_token = lease_token + 1, ${FREE_SHARD_SQL}, updated_at = ? WHERE id = ?`, now, Number(current.id));
      return undefined;
    });
  }

  async heartbeat(lease: Lease, progress: RunProgress): Promise<boolean> {
    return this.#db.write(() => {
      const now = Date.now();
      const held = this.#db.run('UPDATE shards SET lease_expires_at = ? WHERE id = ? AND lease_token = ?', now + lease.leaseMs, lease.shardId, lease.token);
      updateRun(this.#db, lease.runId, progress, now);
      return held === 1;
    });
  }

  async previousRun(lease: Lease): Promise<RunInfo | undefined> {
    const row = this.#db.get('SELECT * FROM runs WHERE shard_id = ? AND id < ? ORDER BY id DESC LIMIT 1', lease.shardId, lease.runId);
    return row === undefined ? undefined : toRun(row);
  }

  /** The processes sharing a SQLite file share this machine's clock. */
  async now(): Promise<number> {
    return Date.now();
  }

  /** No notifications here: the runner's poll interval. */
  waitForChange(_instanceId: number, ms: number, signal?: AbortSignal): Promise<void> {
    return idleWait(ms, signal);
  }

  async release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    this.#db.write(() => {
      const now = Date.now();
      this.#db.run(`UPDATE shards SET ${FREE_SHARD_SQL}, updated_at = ? WHERE id = ? AND lease_token = ?`, now, lease.shardId, lease.token);
      updateRun(this.#db, lease.runId, run, now, outcome);
    });
  }
}

/** Progress columns of a run (heartbeat, checkpoint, release); with `outcome`, the run ends. */
export function updateRun(db: SqliteDriver, runId: number, progress: RunProgress, now: number, outcome?: RunOutcome): void {
  // A lease outside any run (leaseShard) has no run to write.
  if (runId === 0) return;
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
  db.run(`UPDATE runs SET ${sets.join(', ')} WHERE id = ?`, ...values, runId);
}

/**
 * Progress marks of a SQLite store's runs, kept in the effect journal's file (`<store>.effects`)
 * on a connection of their own. Why not the runs table: a job writing through `ctx.tx` keeps the
 * main file's connection inside its open transaction until the next checkpoint, so a mark
 * written there would commit with the chunk or not at all — and a SIGKILL would take it, which
 * is how a run that redid 6,000 records used to report 0. Here each mark is a short autocommit
 * transaction, in the OS's hands when the call returns; reaping a dead run copies it into its row.
 */
class SqliteProgressMarks {
  readonly #store: SqliteDriver;
  readonly #path: string;
  #storeId: string | undefined;
  #db: DatabaseSync | undefined;
  readonly #statements = new Map<string, StatementSync>();

  constructor(driver: SqliteDriver) {
    this.#store = driver;
    this.#path = driver.path === ':memory:' ? ':memory:' : `${driver.path}.effects`;
    driver.onClose.push(() => this.#close());
  }

  /** The main file's random id: marks left beside a deleted and recreated store never answer for it. */
  get #id(): string {
    this.#storeId ??= String(this.#store.get("SELECT value FROM ckpt_meta WHERE key = 'store_id'")?.value ?? 'unknown');
    return this.#storeId;
  }

  get #conn(): DatabaseSync {
    if (this.#db !== undefined) return this.#db;
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(this.#path);
      db.exec('PRAGMA busy_timeout = 10000');
      if (this.#path !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
      // NORMAL, not FULL: in WAL mode a commit is then written to the OS but not fsynced, so it
      // survives the process being killed (what marks are for: SIGKILL, OOM, eviction) at ~50 µs
      // instead of ~2 ms. A power loss or kernel crash may lose the last marks; see docs/DESIGN.md.
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec(`CREATE TABLE IF NOT EXISTS progress_marks (
        store_id TEXT NOT NULL, run_id INTEGER NOT NULL, ceiling INTEGER NOT NULL, step INTEGER NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (store_id, run_id)
      )`);
    } catch (error) {
      throw new StoreError(`cannot open the progress marks in ${this.#path}: ${(error as Error).message}; check that it is writable`, { cause: error });
    }
    this.#db = db;
    return db;
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#conn.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  write(runId: number, mark: ProgressMark): void {
    this.#statement(
      `INSERT INTO progress_marks (store_id, run_id, ceiling, step, at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET ceiling = excluded.ceiling, step = excluded.step, at = excluded.at`,
    ).run(this.#id, runId, mark.ceiling, mark.step, Date.now());
  }

  /** The run's last mark, if it wrote one (a store whose runs never marked has no file to open). */
  read(runId: number): ProgressMark | undefined {
    if (this.#db === undefined && this.#path !== ':memory:' && !existsSync(this.#path)) return undefined;
    const row = this.#statement('SELECT ceiling, step FROM progress_marks WHERE store_id = ? AND run_id = ?').get(this.#id, runId);
    return row === undefined ? undefined : { ceiling: Number(row.ceiling), step: Number(row.step) };
  }

  #close(): void {
    this.#statements.clear();
    this.#db?.close();
    this.#db = undefined;
  }
}
