import { FencedError } from '../../errors.ts';
import { CHECKPOINT_HISTORY, newestVerifying } from '../checksum.ts';
import type { Checkpoint, CheckpointStore, CheckpointWrite, LatestCheckpoint, Lease, RunProgress, Tx } from '../store.ts';
import { checkpointWrites } from './shared-writes.ts';
import { finishTx, ownTx, type SqlDriver, type SqlJobTx, type SqlQueryable } from './sql-driver.ts';
import { updateRun } from './sql-leases.ts';

/**
 * Checkpoints on a SQL server. A commit locks the shard row and compares fencing tokens inside
 * the same transaction as the checkpoint and the job's `ctx.tx` writes, so a worker that lost its
 * lease can move neither.
 */
export class SqlCheckpoints implements CheckpointStore {
  readonly #db: SqlDriver;
  readonly #openTx: (lease: Lease) => Promise<SqlJobTx>;

  constructor(driver: SqlDriver, openTx: (lease: Lease) => Promise<SqlJobTx>) {
    this.#db = driver;
    this.#openTx = openTx;
  }

  async latest(lease: Lease): Promise<LatestCheckpoint> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.prefix}checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?`, [
      lease.shardId,
      CHECKPOINT_HISTORY,
    ]);
    return newestVerifying(lease.shardId, rows);
  }

  async begin(lease: Lease): Promise<Tx> {
    const tx = await this.#openTx(lease);
    this.#db.openTxs.add(tx);
    return tx;
  }

  commit(tx: Tx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    const jobTx = ownTx(this.#db, tx);
    return finishTx(this.#db, tx, async (on) => ({ result: await this.#write(on, jobTx, checkpoint, run), commit: true }));
  }

  async rollback(tx: Tx): Promise<void> {
    const jobTx = ownTx(this.#db, tx);
    this.#db.openTxs.delete(jobTx);
    await jobTx.end(false);
  }

  /**
   * The checkpoint's writes, inside the job's transaction (finishTx commits it). Fencing comes
   * first: the shard row's lock orders this commit against any claim, so a stale token rolls back
   * the checkpoint and the job's ctx.tx writes together.
   */
  async #write(tx: SqlQueryable, jobTx: SqlJobTx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    const { prefix, dialect } = this.#db;
    const { lease } = jobTx;
    // From here the shard row is locked until COMMIT. A worker frozen in this window (SIGSTOP, a
    // paused VM) would keep it locked, and every other worker's claim would skip the shard for as
    // long as the freeze lasts: past a lease of silence (at least the dialect's frozenSessionMs, so
    // a slow client between two statements is never mistaken for a frozen one), the server ends
    // the session and rolls it back.
    await jobTx.limitIdle(Math.max(lease.leaseMs, dialect.frozenSessionMs));
    const shard = (await tx.query(`SELECT lease_token, checkpoint_seq, ${dialect.now} AS now FROM ${prefix}shards WHERE id = ? FOR UPDATE`, [lease.shardId]))
      .rows[0];
    if (shard === undefined || Number(shard.lease_token) !== lease.token) {
      throw new FencedError(
        `shard ${lease.shard} was claimed by another worker (fencing token ${lease.token} is stale); this worker's uncommitted work is discarded`,
        { shard: lease.shard },
      );
    }
    const seq = Number(shard.checkpoint_seq) + 1;
    const now = Number(shard.now);
    for (const write of checkpointWrites(prefix, lease, seq, now, checkpoint, run)) await tx.query(write.sql, write.values);
    await updateRun(tx, this.#db, lease.runId, run, run.complete ? 'completed' : undefined);
    return { seq, position: checkpoint.position, state: checkpoint.state, processed: checkpoint.processed, createdAt: now };
  }
}
