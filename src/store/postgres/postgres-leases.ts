import { FencedError } from '../../errors.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum } from '../checksum.ts';
import { REAPED_OUTCOME_SQL, type Row, RUN_PROGRESS_COLUMNS, toRun } from '../rows.ts';
import type { Checkpoint, InstanceInfo, Lease, ProgressMark, RunInfo, RunOutcome, RunProgress } from '../store.ts';
import type { PgQueryable } from './pg-types.ts';

/** Now on the database's clock, in epoch ms: every lease is judged by one clock. */
export const NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** How long a transaction of ours may sit idle, its worker frozen, before PostgreSQL ends the session. */
export const FROZEN_SESSION_MS = 5000;

/**
 * The SQL of leases, fencing and checkpoints on PostgreSQL, apart from the store class (which
 * owns connections, transactions and error handling). `prefix` is the quoted schema and a dot.
 *
 * Invariant: a shard's lease_token only grows, and every write on behalf of a lease (heartbeat,
 * checkpoint, release, inputs) names the token it holds; a write with an older token changes
 * nothing, and a checkpoint with one throws FencedError inside the job's transaction.
 */
export class PostgresLeases {
  readonly #s: string;

  constructor(prefix: string) {
    this.#s = prefix;
  }

  /** Running runs of the instance, with whether their lease expired or their shard moved on. */
  async reapCandidates(on: PgQueryable, instanceId: number): Promise<Row[]> {
    const { rows } = await on.query(
      `SELECT r.id, r.worker, r.shard_id, s.lease_expires_at < ${NOW} AS expired, s.run_id IS DISTINCT FROM r.id AS superseded
       FROM ${this.#s}runs r JOIN ${this.#s}shards s ON s.id = r.shard_id WHERE r.instance_id = $1 AND r.outcome = 'running'`,
      [instanceId],
    );
    return rows;
  }

  /** Mark one run crashed and free its shard; in a transaction. The condition is checked again
   * under the row lock, so a heartbeat that landed since keeps its run. */
  async reapRun(tx: PgQueryable, candidate: Row, dead: boolean): Promise<RunInfo | undefined> {
    const runs = await tx.query(
      `UPDATE ${this.#s}runs r SET outcome = ${REAPED_OUTCOME_SQL.replace('mark_step', 'r.mark_step')}, ended_at = r.heartbeat_at FROM ${this.#s}shards s
       WHERE r.id = $1 AND r.outcome = 'running' AND s.id = r.shard_id AND (s.lease_expires_at < ${NOW} OR s.run_id IS DISTINCT FROM r.id OR $2::boolean)
       RETURNING r.*`,
      [candidate.id, dead],
    );
    if (runs.rows.length === 0) return undefined;
    await tx.query(
      `UPDATE ${this.#s}shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END
       WHERE id = $1 AND run_id = $2`,
      [candidate.shard_id, candidate.id],
    );
    return toRun(runs.rows[0] as Row);
  }

  /** Claim a free or expired shard: new token, new run row; in a transaction. */
  async claim(tx: PgQueryable, instance: InstanceInfo, worker: string, leaseMs: number): Promise<Lease | null> {
    // SKIP LOCKED: workers claiming at the same moment each take a different shard, none waits.
    const claimed = await tx.query(
      `WITH candidate AS (
         SELECT id FROM ${this.#s}shards WHERE instance_id = $1 AND generation = $2 AND status <> 'completed'
           AND (lease_owner IS NULL OR lease_expires_at < ${NOW}) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
       UPDATE ${this.#s}shards s SET lease_owner = $3, lease_token = s.lease_token + 1, lease_expires_at = ${NOW} + $4, status = 'running', updated_at = ${NOW}
       FROM candidate WHERE s.id = candidate.id RETURNING s.*`,
      [instance.id, instance.generation, worker, leaseMs],
    );
    const shard = claimed.rows[0];
    if (shard === undefined) return null;
    const shardId = Number(shard.id);
    const token = Number(shard.lease_token);
    // A run still marked running on an expired lease is a crashed (or paused) worker: fenced from now on.
    await tx.query(`UPDATE ${this.#s}runs SET outcome = ${REAPED_OUTCOME_SQL}, ended_at = heartbeat_at WHERE shard_id = $1 AND outcome = 'running'`, [shardId]);
    const run = await tx.query(
      `INSERT INTO ${this.#s}runs (instance_id, generation, shard_id, shard, worker, token, started_at, heartbeat_at, start_processed, mark_processed)
       VALUES ($1, $2, $3, $4, $5, $6, ${NOW}, ${NOW}, $7, $7) RETURNING id`,
      [instance.id, instance.generation, shardId, shard.name, worker, token, shard.processed],
    );
    const runId = Number(run.rows[0]?.id);
    await tx.query(`UPDATE ${this.#s}shards SET run_id = $1 WHERE id = $2`, [runId, shardId]);
    return { instanceId: instance.id, generation: instance.generation, shardId, shard: String(shard.name), worker, token, runId, leaseMs };
  }

  /** Extend the lease if this token still holds it; record progress either way. */
  async heartbeat(on: PgQueryable, lease: Lease, progress: RunProgress): Promise<boolean> {
    const held = await on.query(`UPDATE ${this.#s}shards SET lease_expires_at = ${NOW} + $1 WHERE id = $2 AND lease_token = $3 RETURNING id`, [
      lease.leaseMs,
      lease.shardId,
      lease.token,
    ]);
    await this.updateRun(on, lease.runId, progress);
    return held.rows.length === 1;
  }

  /** The run's progress mark, on an autocommit connection: durable before the run goes past it. */
  async markProgress(on: PgQueryable, lease: Lease, mark: ProgressMark): Promise<void> {
    await on.query(`UPDATE ${this.#s}runs SET mark_ceiling = $1, mark_step = $2 WHERE id = $3 AND outcome = 'running'`, [mark.ceiling, mark.step, lease.runId]);
  }

  /** Progress columns of a run; with `outcome`, the run ends. */
  async updateRun(on: PgQueryable, runId: number, progress: RunProgress, outcome?: RunOutcome): Promise<void> {
    const sets = [`heartbeat_at = ${NOW}`];
    const values: unknown[] = [];
    const set = (column: string, value: unknown) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    for (const [key, column] of RUN_PROGRESS_COLUMNS) if (progress[key] !== undefined) set(column, progress[key]);
    if (progress.resumedFrom !== undefined) set('resumed_from', JSON.stringify(progress.resumedFrom));
    if (progress.stats !== undefined) set('stats', JSON.stringify(progress.stats));
    if (outcome !== undefined) {
      set('outcome', outcome);
      sets.push(`ended_at = ${NOW}`);
    }
    values.push(runId);
    await on.query(`UPDATE ${this.#s}runs SET ${sets.join(', ')} WHERE id = $${values.length}`, values);
  }

  /**
   * The checkpoint's writes, inside the job's transaction (the caller commits it). Fencing comes
   * first: the shard row's lock orders this commit against any claim, so a stale token rolls back
   * the checkpoint and the job's ctx.tx writes together.
   */
  async writeCheckpoint(
    tx: PgQueryable,
    lease: Lease,
    checkpoint: Omit<Checkpoint, 'seq' | 'createdAt'>,
    run: RunProgress & { complete?: boolean },
  ): Promise<Checkpoint> {
    // From here the shard row is locked until COMMIT. A worker frozen in this window (SIGSTOP, a
    // paused VM) would keep it locked, and every other worker's claim would skip the shard for as
    // long as the freeze lasts: past a lease of silence (at least FROZEN_SESSION_MS, so a slow
    // client between two statements is never mistaken for a frozen one), PostgreSQL ends it.
    await tx.query(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [String(Math.max(lease.leaseMs, FROZEN_SESSION_MS))]);
    const shard = (await tx.query(`SELECT lease_token, checkpoint_seq, ${NOW} AS now FROM ${this.#s}shards WHERE id = $1 FOR UPDATE`, [lease.shardId])).rows[0];
    if (shard === undefined || Number(shard.lease_token) !== lease.token) {
      throw new FencedError(
        `shard ${lease.shard} was claimed by another worker (fencing token ${lease.token} is stale); this worker's uncommitted work is discarded`,
        { shard: lease.shard },
      );
    }
    const seq = Number(shard.checkpoint_seq) + 1;
    const now = Number(shard.now);
    const checksum = checkpointChecksum(lease.shardId, seq, checkpoint.position, checkpoint.state, checkpoint.processed);
    await tx.query(
      `INSERT INTO ${this.#s}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [lease.shardId, seq, JSON.stringify(checkpoint.position), JSON.stringify(checkpoint.state), checkpoint.processed, lease.runId, now, checksum],
    );
    await tx.query(`DELETE FROM ${this.#s}checkpoints WHERE shard_id = $1 AND seq <= $2`, [lease.shardId, seq - CHECKPOINT_HISTORY]);
    await tx.query(
      `UPDATE ${this.#s}shards SET checkpoint_seq = $1, processed = $2, status = $3, lease_owner = $4, lease_expires_at = $5, updated_at = $6
       WHERE id = $7 AND lease_token = $8`,
      [
        seq,
        checkpoint.processed,
        run.complete ? 'completed' : 'running',
        run.complete ? null : lease.worker,
        run.complete ? 0 : now + lease.leaseMs,
        now,
        lease.shardId,
        lease.token,
      ],
    );
    await this.updateRun(tx, lease.runId, run, run.complete ? 'completed' : undefined);
    return { seq, position: checkpoint.position, state: checkpoint.state, processed: checkpoint.processed, createdAt: now };
  }

  /** End the run and free the shard if this token still holds it; in a transaction. */
  async release(tx: PgQueryable, lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    await tx.query(
      `UPDATE ${this.#s}shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END, updated_at = ${NOW}
       WHERE id = $1 AND lease_token = $2`,
      [lease.shardId, lease.token],
    );
    await this.updateRun(tx, lease.runId, run, outcome);
  }
}
