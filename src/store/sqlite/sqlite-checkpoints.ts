import { FencedError, StoreError } from '../../errors.ts';
import { CHECKPOINT_HISTORY, newestVerifying } from '../checksum.ts';
import { checkpointWrites } from '../sql/shared-writes.ts';
import type { Checkpoint, CheckpointStore, CheckpointWrite, LatestCheckpoint, Lease, RunProgress, Tx } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';
import { updateRun } from './sqlite-leases.ts';
import { SIDE_REACH } from './sqlite-migrations.ts';
import { finishTx, ownTx, SqliteTx } from './sqlite-tx.ts';

/**
 * Checkpoints in a SQLite file. The job's transaction opens with BEGIN IMMEDIATE at its first
 * `ctx.tx` statement and holds the file's one write lock until the checkpoint commits in it:
 * the fencing check, the checkpoint and the job's writes are one transaction.
 */
export class SqliteCheckpoints implements CheckpointStore {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  async latest(lease: Lease): Promise<LatestCheckpoint> {
    return newestVerifying(
      lease.shardId,
      this.#db.all('SELECT * FROM checkpoints WHERE shard_id = ? ORDER BY seq DESC LIMIT ?', lease.shardId, CHECKPOINT_HISTORY),
    );
  }

  async begin(lease: Lease): Promise<Tx> {
    if (this.#db.openTx?.active) throw new StoreError('a SQLite store runs one shard transaction at a time per process');
    const tx = new SqliteTx(lease, this.#db.conn, this.#db.jobStatements);
    this.#db.openTx = tx;
    return tx;
  }

  async commit(tx: Tx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    return finishTx(this.#db, tx, () => ({ result: this.#write(tx.lease, checkpoint, run), commit: true }));
  }

  async rollback(tx: Tx): Promise<void> {
    const sqliteTx = ownTx(this.#db, tx);
    if (sqliteTx.begun && this.#db.conn.isTransaction) this.#db.conn.exec('ROLLBACK');
    sqliteTx.end();
  }

  /** The checkpoint's writes, fencing first: a stale token throws and the whole transaction rolls back. */
  #write(lease: Lease, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Checkpoint {
    const db = this.#db;
    const now = Date.now();
    const shard = db.get('SELECT lease_token, checkpoint_seq FROM shards WHERE id = ?', lease.shardId);
    if (shard === undefined || Number(shard.lease_token) !== lease.token) {
      throw new FencedError(
        `shard ${lease.shard} was claimed by another worker (fencing token ${lease.token} is stale); this worker's uncommitted work is discarded`,
        { shard: lease.shard },
      );
    }
    const seq = Number(shard.checkpoint_seq) + 1;
    for (const write of checkpointWrites('', lease, seq, now, checkpoint, run)) db.run(write.sql, ...write.values);
    updateRun(db, lease.runId, run, now, run.complete ? 'completed' : undefined);
    noteSideReach(db);
    return { seq, position: checkpoint.position, state: checkpoint.state, processed: checkpoint.processed, createdAt: now };
  }
}

/**
 * Notes in the main file, with the checkpoint, how far the side file's event log reached: every
 * effect this checkpoint covers was journalled (with its events) before it, so a side file that
 * later ends before this mark lost writes it had made durable (its `-wal` deleted after a crash,
 * an older copy restored), and `refuseRegressedSide` refuses it rather than let its effects run
 * again unjournalled. One read of the side file's `sqlite_sequence`, one upsert, per checkpoint.
 */
function noteSideReach(db: SqliteDriver): void {
  if (db.sidePath === ':memory:') return;
  const reach = db.sideStatement("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get()?.seq;
  if (reach === undefined || reach === null) return;
  db.run(
    `INSERT INTO ckpt_meta (key, value) VALUES ('${SIDE_REACH}', ?)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE CAST(excluded.value AS INTEGER) > CAST(ckpt_meta.value AS INTEGER)`,
    String(reach),
  );
}
