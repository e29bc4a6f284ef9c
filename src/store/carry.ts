// What an incremental generation carries from the one it follows (`resetInstance(…, { carry })`),
// the same for every backend: each completed shard's last verifying checkpoint becomes the new
// shard's first, with its count at 0 (the generation counts its own records).
import type { JsonObject, JsonValue } from '../json.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum, newestVerifying } from './checksum.ts';
import type { Row } from './rows.ts';

export interface CarriedShard {
  name: string;
  version: string | null;
  fingerprint: string | null;
  paramsHash: string | null;
  position: JsonValue | null;
  state: JsonObject;
}

/** The shards of `generation` to carry into the next one (completed shards with a verifying checkpoint). */
export const carryShardsSql = (table: string, placeholders: [string, string]) =>
  `SELECT * FROM ${table} WHERE instance_id = ${placeholders[0]} AND generation = ${placeholders[1]} AND status = 'completed' ORDER BY id`;

/** How many of a shard's checkpoint rows to read, newest first, to find the one that verifies. */
export const CARRY_HISTORY = CHECKPOINT_HISTORY;

/** The carried seed of an old shard row, from its checkpoint rows (newest first); undefined when none verifies. */
export function carriedShard(shard: Row, checkpoints: Row[]): CarriedShard | undefined {
  const { checkpoint } = newestVerifying(Number(shard.id), checkpoints);
  if (checkpoint === undefined) return undefined;
  return {
    name: String(shard.name),
    version: shard.version == null ? null : String(shard.version),
    fingerprint: shard.fingerprint == null ? null : String(shard.fingerprint),
    paramsHash: shard.params_hash == null ? null : String(shard.params_hash),
    position: checkpoint.position,
    state: checkpoint.state,
  };
}

/** The new shard's first checkpoint row values: seq 1, count 0, no run. */
export function seedCheckpoint(shardId: number, carried: CarriedShard): { position: string; state: string; checksum: string } {
  return {
    position: JSON.stringify(carried.position),
    state: JSON.stringify(carried.state),
    checksum: checkpointChecksum(shardId, 1, carried.position, carried.state, 0),
  };
}
