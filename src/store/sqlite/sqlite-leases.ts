import { REAPED_OUTCOME_SQL, type Row, RUN_PROGRESS_COLUMNS, toRun } from '../rows.ts';
import type { HolderInfo, InstanceInfo, Lease, LeaseStore, ProgressMark, RunInfo, RunOutcome, RunProgress } from '../store.ts';
import type { SQLInputValue, SqliteDriver } from './sqlite-driver.ts';
import { SqliteProgressMarks } from './sqlite-marks.ts';

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

  async reapCrashed(instanceId: number, isDead: (worker: string) => boolean): Promise<RunInfo[]> {
    const now = Date.now();
    // Read first: a healthy instance needs no write, so a second process never waits on the lock.
    const candidates = this.#db
      .all(
        `SELECT r.*, s.lease_expires_at, s.run_id AS shard_run FROM runs r JOIN shards s ON s.id = r.shard_id
         WHERE r.instance_id = ? AND r.outcome = 'running'`,
        instanceId,
      )
      .filter((row) => Number(row.lease_expires_at) < now || Number(row.shard_run) !== Number(row.id) || isDead(String(row.worker)));
    if (candidates.length === 0) return [];
    return this.#db.write(() => {
      const reaped: RunInfo[] = [];
      for (const row of candidates) {
        this.#foldMark(Number(row.id));
        const changed = this.#db.run(
          `UPDATE runs SET outcome = ${REAPED_OUTCOME_SQL}, ended_at = heartbeat_at WHERE id = ? AND outcome = 'running'`,
          Number(row.id),
        );
        if (changed === 0) continue;
        this.#db.run(
          "UPDATE shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END WHERE id = ? AND run_id = ?",
          Number(row.shard_id),
          Number(row.id),
        );
        reaped.push(toRun(this.#db.get('SELECT * FROM runs WHERE id = ?', Number(row.id)) as Row));
      }
      return reaped;
    });
  }

  async claim(instance: InstanceInfo, worker: string, leaseMs: number): Promise<Lease | null> {
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
          'INSERT INTO runs (instance_id, generation, shard_id, shard, worker, token, started_at, heartbeat_at, start_processed, mark_processed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(instance.id, instance.generation, shardId, String(shard.name), worker, token, now, now, Number(shard.processed), Number(shard.processed));
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
        `SELECT s.name, s.lease_owner, s.lease_expires_at FROM shards s JOIN instances i ON i.id = s.instance_id AND i.generation = s.generation
         WHERE s.instance_id = ? AND s.status != 'completed' AND s.lease_owner IS NOT NULL AND s.lease_expires_at >= ? ORDER BY s.id`,
        instanceId,
        Date.now(),
      )
      .map((row) => ({ shard: String(row.name), worker: String(row.lease_owner), expiresAt: Number(row.lease_expires_at) }));
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

  async release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    this.#db.write(() => {
      const now = Date.now();
      this.#db.run(
        "UPDATE shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END, updated_at = ? WHERE id = ? AND lease_token = ?",
        now,
        lease.shardId,
        lease.token,
      );
      updateRun(this.#db, lease.runId, run, now, outcome);
    });
  }
}

/** Progress columns of a run (heartbeat, checkpoint, release); with `outcome`, the run ends. */
export function updateRun(db: SqliteDriver, runId: number, progress: RunProgress, now: number, outcome?: RunOutcome): void {
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
