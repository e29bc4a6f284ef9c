import { type Row, RUN_PROGRESS_COLUMNS, toRun } from '../rows.ts';
import type { HolderInfo, InstanceInfo, Lease, RunInfo, RunOutcome, RunProgress } from '../store.ts';
import { type MysqlQueryable, NOW } from './mysql-driver.ts';

/**
 * The SQL of claims, leases and run rows on MySQL/MariaDB, apart from the store class (which owns
 * connections, transactions and error handling). `p` is the table prefix.
 *
 * Invariant: a shard's lease_token only grows, and every write on behalf of a lease (heartbeat,
 * checkpoint, release, inputs) names the token it holds; a write with an older token changes
 * nothing, and a checkpoint with one throws FencedError inside the job's transaction.
 */
export class MysqlLeases {
  readonly #p: string;

  constructor(prefix: string) {
    this.#p = prefix;
  }

  /** Running runs of the instance, with whether their lease expired or their shard moved on. */
  async reapCandidates(on: MysqlQueryable, instanceId: number): Promise<Row[]> {
    const { rows } = await on.query(
      `SELECT r.id, r.worker, r.shard_id, s.lease_expires_at < ${NOW} AS expired, NOT (s.run_id <=> r.id) AS superseded
       FROM ${this.#p}runs r JOIN ${this.#p}shards s ON s.id = r.shard_id WHERE r.instance_id = ? AND r.outcome = 'running'`,
      [instanceId],
    );
    return rows;
  }

  /** Mark one run crashed and free its shard; in a transaction. The condition is checked again
   * under the row locks, so a heartbeat that landed since keeps its run. */
  async reapRun(tx: MysqlQueryable, candidate: Row, dead: boolean): Promise<RunInfo | undefined> {
    const marked = await tx.query(
      `UPDATE ${this.#p}runs r JOIN ${this.#p}shards s ON s.id = r.shard_id SET r.outcome = 'crashed', r.ended_at = r.heartbeat_at
       WHERE r.id = ? AND r.outcome = 'running' AND (s.lease_expires_at < ${NOW} OR NOT (s.run_id <=> r.id) OR ?)`,
      [candidate.id, dead],
    );
    if (marked.affectedRows === 0) return undefined;
    await tx.query(
      `UPDATE ${this.#p}shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END
       WHERE id = ? AND run_id = ?`,
      [candidate.shard_id, candidate.id],
    );
    const run = (await tx.query(`SELECT * FROM ${this.#p}runs WHERE id = ?`, [candidate.id])).rows[0];
    return run === undefined ? undefined : toRun(run);
  }

  /** Claim a free or expired shard: new token, new run row; in a transaction. */
  async claim(tx: MysqlQueryable, instance: InstanceInfo, worker: string, leaseMs: number): Promise<Lease | null> {
    // SKIP LOCKED: workers claiming at the same moment each take a different shard, none waits.
    // MySQL cannot UPDATE a table it selects from in a subquery, so: lock the row, then update it.
    const candidate = (
      await tx.query(
        `SELECT id FROM ${this.#p}shards WHERE instance_id = ? AND generation = ? AND status <> 'completed'
         AND (lease_owner IS NULL OR lease_expires_at < ${NOW}) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [instance.id, instance.generation],
      )
    ).rows[0];
    if (candidate === undefined) return null;
    const shardId = Number(candidate.id);
    await tx.query(
      `UPDATE ${this.#p}shards SET lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = ${NOW} + ?, status = 'running', updated_at = ${NOW}
       WHERE id = ?`,
      [worker, leaseMs, shardId],
    );
    const shard = (await tx.query(`SELECT name, lease_token, processed FROM ${this.#p}shards WHERE id = ?`, [shardId])).rows[0] as Row;
    const token = Number(shard.lease_token);
    // A run still marked running on an expired lease is a crashed (or paused) worker: fenced from now on.
    await tx.query(`UPDATE ${this.#p}runs SET outcome = 'crashed', ended_at = heartbeat_at WHERE shard_id = ? AND outcome = 'running'`, [shardId]);
    const run = await tx.query(
      `INSERT INTO ${this.#p}runs (instance_id, generation, shard_id, shard, worker, token, started_at, heartbeat_at, start_processed, mark_processed, stats)
       VALUES (?, ?, ?, ?, ?, ?, ${NOW}, ${NOW}, ?, ?, '{}')`,
      [instance.id, instance.generation, shardId, shard.name, worker, token, shard.processed, shard.processed],
    );
    const runId = run.insertId;
    await tx.query(`UPDATE ${this.#p}shards SET run_id = ? WHERE id = ?`, [runId, shardId]);
    return { instanceId: instance.id, generation: instance.generation, shardId, shard: String(shard.name), worker, token, runId, leaseMs };
  }

  /** Unfinished shards of the current generation held by a lease that has not expired. */
  async holders(on: MysqlQueryable, instanceId: number): Promise<HolderInfo[]> {
    const { rows } = await on.query(
      `SELECT s.name, s.lease_owner, s.lease_expires_at FROM ${this.#p}shards s JOIN ${this.#p}instances i ON i.id = s.instance_id AND i.generation = s.generation
       WHERE s.instance_id = ? AND s.status <> 'completed' AND s.lease_owner IS NOT NULL AND s.lease_expires_at >= ${NOW} ORDER BY s.id`,
      [instanceId],
    );
    return rows.map((row) => ({ shard: String(row.name), worker: String(row.lease_owner), expiresAt: Number(row.lease_expires_at) }));
  }

  /** Extend the lease if this token still holds it; record progress either way. */
  async heartbeat(on: MysqlQueryable, lease: Lease, progress: RunProgress): Promise<boolean> {
    // Matched rows, not changed ones (the driver connects with FOUND_ROWS): two beats within one
    // millisecond still find their lease.
    const held = await on.query(`UPDATE ${this.#p}shards SET lease_expires_at = ${NOW} + ? WHERE id = ? AND lease_token = ?`, [
      lease.leaseMs,
      lease.shardId,
      lease.token,
    ]);
    await this.updateRun(on, lease.runId, progress);
    return held.affectedRows === 1;
  }

  /** Progress columns of a run; with `outcome`, the run ends. */
  async updateRun(on: MysqlQueryable, runId: number, progress: RunProgress, outcome?: RunOutcome): Promise<void> {
    const sets = [`heartbeat_at = ${NOW}`];
    const values: unknown[] = [];
    const set = (column: string, value: unknown) => {
      values.push(value);
      sets.push(`${column} = ?`);
    };
    for (const [key, column] of RUN_PROGRESS_COLUMNS) if (progress[key] !== undefined) set(column, progress[key]);
    if (progress.resumedFrom !== undefined) set('resumed_from', JSON.stringify(progress.resumedFrom));
    if (progress.stats !== undefined) set('stats', JSON.stringify(progress.stats));
    if (outcome !== undefined) {
      set('outcome', outcome);
      sets.push(`ended_at = ${NOW}`);
    }
    values.push(runId);
    await on.query(`UPDATE ${this.#p}runs SET ${sets.join(', ')} WHERE id = ?`, values);
  }

  /** End the run and free the shard if this token still holds it; in a transaction. */
  async release(tx: MysqlQueryable, lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    await tx.query(
      `UPDATE ${this.#p}shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END, updated_at = ${NOW}
       WHERE id = ? AND lease_token = ?`,
      [lease.shardId, lease.token],
    );
    await this.updateRun(tx, lease.runId, run, outcome);
  }
}
