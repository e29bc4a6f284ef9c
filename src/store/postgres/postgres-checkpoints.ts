import { FencedError } from '../../errors.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum, newestVerifying } from '../checksum.ts';
import type { Checkpoint, CheckpointStore, CheckpointWrite, LatestCheckpoint, Lease, RunProgress, Tx } from '../store.ts';
import { FROZEN_SESSION_MS, NOW, type PgQueryable, type PostgresDriver } from './postgres-driver.ts';
import { updateRun } from './postgres-leases.ts';
import { finishTx, ownTx, PostgresTx } from './postgres-tx.ts';

/**
 * Checkpoints on PostgreSQL. A commit locks the shard row and compares fencing tokens inside the
 * same transaction as the checkpoint and the job's `ctx.tx` writes, so a worker that lost its
 * lease can move neither.
 */
export class PostgresCheckpoints implements CheckpointStore {
  readonly #db: PostgresDriver;

  constructor(driver: PostgresDriver) {
    this.#db = driver;
  }

  async latest(lease: Lease): Promise<LatestCheckpoint> {
    const rows = await this.#db.query(`SELECT * FROM ${this.#db.s}checkpoints WHERE shard_id = $1 ORDER BY seq DESC LIMIT $2`, [
      lease.shardId,
      CHECKPOINT_HISTORY,
    ]);
    return newestVerifying(lease.shardId, rows);
  }

  async begin(lease: Lease): Promise<Tx> {
    await this.#db.pool();
    const tx = new PostgresTx(lease, this.#db.pool, this.#db.location);
    this.#db.openTxs.add(tx);
    return tx;
  }

  commit(tx: Tx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    return finishTx(this.#db, tx, async (on) => ({ result: await this.#write(on, tx.lease, checkpoint, run), commit: true }));
  }

  async rollback(tx: Tx): Promise<void> {
    const pgTx = ownTx(this.#db, tx);
    this.#db.openTxs.delete(pgTx);
    await pgTx.end(false);
  }

  /**
   * The checkpoint's writes, inside the job's transaction (finishTx commits it). Fencing comes
   * first: the shard row's lock orders this commit against any claim, so a stale token rolls back
   * the checkpoint and the job's ctx.tx writes together.
   */
  async #write(tx: PgQueryable, lease: Lease, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    const s = this.#db.s;
    // From here the shard row is locked until COMMIT. A worker frozen in this window (SIGSTOP, a
    // paused VM) would keep it locked, and every other worker's claim would skip the shard for as
    // long as the freeze lasts: past a lease of silence (at least FROZEN_SESSION_MS, so a slow
    // client between two statements is never mistaken for a frozen one), PostgreSQL ends it.
    await tx.query(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [String(Math.max(lease.leaseMs, FROZEN_SESSION_MS))]);
    const shard = (await tx.query(`SELECT lease_token, checkpoint_seq, ${NOW} AS now FROM ${s}shards WHERE id = $1 FOR UPDATE`, [lease.shardId])).rows[0];
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
      `INSERT INTO ${s}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum, wrote_tx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        lease.shardId,
        seq,
        JSON.stringify(checkpoint.position),
        JSON.stringify(checkpoint.state),
        checkpoint.processed,
        lease.runId,
        now,
        checksum,
        checkpoint.wroteTx === true,
      ],
    );
    await tx.query(`DELETE FROM ${s}checkpoints WHERE shard_id = $1 AND seq <= $2`, [lease.shardId, seq - CHECKPOINT_HISTORY]);
    await tx.query(
      `UPDATE ${s}shards SET checkpoint_seq = $1, processed = $2, status = $3, lease_owner = $4, lease_expires_at = $5, updated_at = $6
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
    await updateRun(tx, s, lease.runId, run, run.complete ? 'completed' : undefined);
    return { seq, position: checkpoint.position, state: checkpoint.state, processed: checkpoint.processed, createdAt: now };
  }
}
