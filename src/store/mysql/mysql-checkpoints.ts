import { FencedError } from '../../errors.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum, newestVerifying } from '../checksum.ts';
import type { Checkpoint, CheckpointStore, CheckpointWrite, LatestCheckpoint, Lease, RunProgress, Tx } from '../store.ts';
import { boundIdleWait, FROZEN_SESSION_MS, type MysqlDriver, type MysqlQueryable, NOW } from './mysql-driver.ts';
import { updateRun } from './mysql-leases.ts';
import { finishTx, MysqlTx, ownTx } from './mysql-tx.ts';

/**
 * Checkpoints on MySQL/MariaDB. A commit locks the shard row and compares fencing tokens inside
 * the same transaction as the checkpoint and the job's `ctx.tx` writes, so a worker that lost its
 * lease can move neither.
 */
export class MysqlCheckpoints implements CheckpointStore {
  readonly #db: MysqlDriver;

  constructor(driver: MysqlDriver) {
    this.#db = driver;
  }

  async latest(lease: Lease): Promise<LatestCheckpoint> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.p}checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?`, [
      lease.shardId,
      CHECKPOINT_HISTORY,
    ]);
    return newestVerifying(lease.shardId, rows);
  }

  async begin(lease: Lease): Promise<Tx> {
    await this.#db.pool();
    const tx = new MysqlTx(lease, this.#db.pool, this.#db.location);
    this.#db.openTxs.add(tx);
    return tx;
  }

  commit(tx: Tx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    return finishTx(this.#db, tx, async (on) => ({ result: await this.#write(on, ownTx(this.#db, tx), checkpoint, run), commit: true }));
  }

  async rollback(tx: Tx): Promise<void> {
    const mysqlTx = ownTx(this.#db, tx);
    this.#db.openTxs.delete(mysqlTx);
    await mysqlTx.end(false);
  }

  /**
   * The checkpoint's writes, inside the job's transaction (finishTx commits it). Fencing comes
   * first: the shard row's lock orders this commit against any claim, so a stale token rolls back
   * the checkpoint and the job's ctx.tx writes together.
   */
  async #write(tx: MysqlQueryable, mysqlTx: MysqlTx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    const p = this.#db.p;
    const { lease } = mysqlTx;
    // From here the shard row is locked until COMMIT. A worker frozen in this window (SIGSTOP, a
    // paused VM) would keep it locked, and every other worker's claim would skip the shard for as
    // long as the freeze lasts: past a lease of silence (at least FROZEN_SESSION_MS, so a slow
    // client between two statements is never mistaken for a frozen one), the server ends the
    // session and rolls it back. MysqlTx.end restores the setting after COMMIT.
    mysqlTx.boundWait = true;
    await tx.query(boundIdleWait(Math.max(lease.leaseMs, FROZEN_SESSION_MS)));
    const shard = (await tx.query(`SELECT lease_token, checkpoint_seq, ${NOW} AS now FROM ${p}shards WHERE id = ? FOR UPDATE`, [lease.shardId])).rows[0];
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
      `INSERT INTO ${p}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum, wrote_tx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        lease.shardId,
        seq,
        JSON.stringify(checkpoint.position),
        JSON.stringify(checkpoint.state),
        checkpoint.processed,
        lease.runId,
        now,
        checksum,
        checkpoint.wroteTx === true ? 1 : 0,
      ],
    );
    await tx.query(`DELETE FROM ${p}checkpoints WHERE shard_id = ? AND seq <= ?`, [lease.shardId, seq - CHECKPOINT_HISTORY]);
    await tx.query(
      `UPDATE ${p}shards SET checkpoint_seq = ?, processed = ?, status = ?, lease_owner = ?, lease_expires_at = ?, updated_at = ?
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
    await updateRun(tx, p, lease.runId, run, run.complete ? 'completed' : undefined);
    return { seq, position: checkpoint.position, state: checkpoint.state, processed: checkpoint.processed, createdAt: now };
  }
}
