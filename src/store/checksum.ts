import { hashJson, type JsonObject, type JsonValue } from '../json.ts';

/** How many checkpoints of a shard are kept as history (the newest verifying one is used). */
export const CHECKPOINT_HISTORY = 5;

/** The checksum every backend stores beside a checkpoint and verifies before using it. */
export function checkpointChecksum(shardId: number, seq: number, position: JsonValue | null, state: JsonObject, processed: number): string {
  return hashJson({ shardId, seq, position, state, processed });
}
