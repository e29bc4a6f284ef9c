import { hashJson, type JsonObject, type JsonValue } from '../json.ts';
import { parseCheckpoint, type Row } from './rows.ts';
import type { LatestCheckpoint } from './store-types.ts';

/** How many checkpoints of a shard are kept as history (the newest verifying one is used). */
export const CHECKPOINT_HISTORY = 5;

/** The checksum every backend stores beside a checkpoint and verifies before using it. */
export function checkpointChecksum(shardId: number, seq: number, position: JsonValue | null, state: JsonObject, processed: number): string {
  return hashJson({ shardId, seq, position, state, processed });
}

/** The newest of a shard's checkpoint rows (newest first) whose checksum verifies, and the newer ones passed over. */
export function newestVerifying(shardId: number, rows: Row[]): LatestCheckpoint {
  const corrupt: number[] = [];
  const corruptWroteTx: number[] = [];
  for (const row of rows) {
    const checkpoint = parseCheckpoint(row);
    if (checkpoint && checkpointChecksum(shardId, checkpoint.seq, checkpoint.position, checkpoint.state, checkpoint.processed) === row.checksum) {
      return { checkpoint, corrupt, corruptWroteTx };
    }
    corrupt.push(Number(row.seq));
    // 1 on SQLite and MySQL, true on PostgreSQL; NULL for a checkpoint written before the flag existed.
    if (row.wrote_tx === true || Number(row.wrote_tx) === 1) corruptWroteTx.push(Number(row.seq));
  }
  return { checkpoint: undefined, corrupt, corruptWroteTx };
}
