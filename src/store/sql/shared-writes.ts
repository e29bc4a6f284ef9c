import { CHECKPOINT_HISTORY, checkpointChecksum } from '../checksum.ts';
import type { CheckpointWrite, Lease, RunProgress, ShardInputs } from '../store.ts';

/** One statement and its values, in `?` placeholders (every backend's driver takes those). */
export interface Write {
  sql: string;
  values: (string | number | null)[];
}

/**
 * The writes of a checkpoint commit after its fencing check, the same on every backend (SQLite
 * runs them synchronously, the servers in the job's transaction): the checkpoint row, the prune
 * of all but the last CHECKPOINT_HISTORY, and the shard's progress and lease (freed when the shard
 * completes). `prefix` names the tables; `now` is the commit's time on the store's clock.
 */
export function checkpointWrites(
  prefix: string,
  lease: Lease,
  seq: number,
  now: number,
  checkpoint: CheckpointWrite,
  run: RunProgress & { complete?: boolean },
): Write[] {
  const checksum = checkpointChecksum(lease.shardId, seq, checkpoint.position, checkpoint.state, checkpoint.processed);
  const row = [JSON.stringify(checkpoint.position), JSON.stringify(checkpoint.state), checkpoint.processed, lease.runId, now, checksum];
  return [
    {
      sql: `INSERT INTO ${prefix}checkpoints (shard_id, seq, position, state, processed, run_id, created_at, checksum, wrote_tx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      values: [lease.shardId, seq, ...row, checkpoint.wroteTx === true ? 1 : 0],
    },
    { sql: `DELETE FROM ${prefix}checkpoints WHERE shard_id = ? AND seq <= ?`, values: [lease.shardId, seq - CHECKPOINT_HISTORY] },
    {
      sql: `UPDATE ${prefix}shards SET checkpoint_seq = ?, processed = ?, status = ?, lease_owner = ?, lease_expires_at = ?, updated_at = ? WHERE id = ? AND lease_token = ?`,
      values: [
        seq,
        checkpoint.processed,
        run.complete ? 'completed' : 'running',
        run.complete ? null : lease.worker,
        run.complete ? 0 : now + lease.leaseMs,
        now,
        lease.shardId,
        lease.token,
      ],
    },
  ];
}

/** What a shard's checkpoints are made from, written only while `lease`'s token holds it. */
export function inputsWrite(prefix: string, lease: Lease, inputs: ShardInputs): Write {
  return {
    sql: `UPDATE ${prefix}shards SET fingerprint = ?, version = ?, params_hash = ?, code = ? WHERE id = ? AND lease_token = ?`,
    values: [inputs.fingerprint, inputs.version, inputs.paramsHash, inputs.code ?? null, lease.shardId, lease.token],
  };
}
