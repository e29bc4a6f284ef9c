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
  for (const row of rows) {
    const checkpoint = parseCheckpoint(row);
    if (checkpoint && checkpointChecksum(shardId, checkpoint.seq, checkpoint.position, checkpoint.state, checkpoint.processed) === row.checksum) {
      return { checkpoint, corrupt };
    }
    corrupt.push(Number(row.seq));
  }
  return { checkpoint: undefined, corrupt };
}
