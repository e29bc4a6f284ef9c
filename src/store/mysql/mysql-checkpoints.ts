import { FencedError } from '../../errors.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum } from '../checksum.ts';
import { parseCheckpoint, toRun } from '../rows.ts';
import type { Checkpoint, LatestCheckpoint, Lease, RunInfo, RunProgress } from '../store.ts';
import { boundIdleWait, FROZEN_SESSION_MS, type MysqlQueryable, NOW } from './mysql-driver.ts';
import type { MysqlLeases } from './mysql-leases.ts';

/** The SQL of checkpoints on MySQL/MariaDB: reading the newest good one, writing the next one fenced. */
export class MysqlCheckpoints {
  readonly #p: string;
  readonly #leases: MysqlLeases;

  constructor(prefix: string, leases: MysqlLeases) {
    this.#p = prefix;
    this.#leases = leases;
  }

  /** Newest checkpoint of the shard whose checksum verifies; the newer ones that did not. */
  async latest(on: MysqlQueryable, lease: Lease): Promise<LatestCheckpoint> {
    const { rows } = await on.query(`SELECT * FROM ${this.#p}checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?`, [lease.shardId, CHECKPOINT_HISTORY]);
    const corrupt: number[] = [];
    for (const row of rows) {
      const checkpoint = parseCheckpoint(row);
      if (checkpoint && checkpointChecksum(lease.shardId, checkpoint.seq, checkpoint.position, checkpoint.state, checkpoint.processed) === row.checksum) {
        return { checkpoint, corrupt };
      }
      corrupt.push(Number(row.seq));
    }
    return { checkpoint: undefined, corrupt };
  }

  async previousRun(on: MysqlQueryable, lease: Lease): Promise<RunInfo | undefined> {
    const { rows } = await on.query(`SELECT * FROM ${this.#p}runs WHERE shard_id = ? AND id < ? ORDER BY id DESC LIMIT 1`, [lease.shardId, lease.runId]);
    return rows[0] === undefined ? undefined : toRun(rows[0]);
  }

  /**
   * The checkpoint's writes, inside the job's transaction (the caller commits it). Fencing comes
   * first: the shard row's lock orders this commit against any claim, so a stale token rolls back
   * the checkpoint and the job's ctx.tx writes together.
   */
  async write(
    tx: MysqlQueryable,
    lease: Lease,
    checkpoint: Omit<Checkpoint, 'seq' | 'createdAt'>,
    run: RunProgress & { complete?: boolean },
  ): Promise<Checkpoint> {
    // From here the shard row is locked until COMMIT. A worker frozen in this window (SIGSTOP, a
    // paused VM) would keep it locked, and every other worker's claim would skip the shard for as
    // long as the freeze lasts: past a lease of silence (at least FROZEN_SESSION_MS, so a slow
    // client between two statements is never mistaken for a frozen one), the server ends it.
    // The caller restores the session's setting after COMMIT (MysqlTx.boundWait).
    await tx.query(boundIdleWait(Math.max(lease.leaseMs, FROZEN_SESSION_MS)));
    const shard = (await tx.query(`SELECT lease_token, checkpoint_seq, ${NOW} AS now FROM ${this.#p}shards WHERE id = ? FOR UPDATE`, [lease.shardId])).rows[0];
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
      `INSERT INTO ${this.#p}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [lease.shardId, seq, JSON.stringify(checkpoint.position), JSON.stringify(checkpoint.state), checkpoint.processed, lease.runId, now, checksum],
    );
    await tx.query(`DELETE FROM ${this.#p}checkpoints WHERE shard_id = ? AND seq <= ?`, [lease.shardId, seq - CHECKPOINT_HISTORY]);
    await tx.query(
      `UPDATE ${this.#p}shards SET checkpoint_seq = ?, processed = ?, status = ?, lease_owner = ?, lease_expires_at = ?, updated_at = ?
       WHERE id = ? AND lease_token = ?`,
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
    await this.#leases.updateRun(tx, lease.runId, run, run.complete ? 'completed' : undefined);
    return { seq, position: checkpoint.position, state: checkpoint.state, processed: checkpoint.processed, createdAt: now };
  }
}
