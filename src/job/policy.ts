/** How often a shard checkpoints: every N records, or every T ms of work. */
export type CheckpointSpec = { every: number } | { everyMs: number };

export const defaultCheckpointSpec: CheckpointSpec = { everyMs: 1000 };

export interface CheckpointPolicy {
  readonly spec: CheckpointSpec;
  /** Is a checkpoint due after `records` records and `elapsedMs` since the last one? */
  due(records: number, elapsedMs: number): boolean;
  /** One line for summaries: "every 1000 records". */
  describe(): string;
}

export function validateCheckpointSpec(spec: unknown): CheckpointSpec {
  if (spec !== null && typeof spec === 'object') {
    const { every, everyMs } = spec as { every?: unknown; everyMs?: unknown };
    if (every !== undefined && everyMs === undefined && Number.isInteger(every) && (every as number) >= 1) return { every: every as number };
    if (everyMs !== undefined && every === undefined && typeof everyMs === 'number' && everyMs > 0) return { everyMs };
  }
  throw new TypeError(`checkpoint must be { every: N } (a whole number ≥ 1) or { everyMs: T } (ms > 0); got ${JSON.stringify(spec)}`);
}

export function checkpointPolicy(spec: CheckpointSpec = defaultCheckpointSpec): CheckpointPolicy {
  const valid = validateCheckpointSpec(spec);
  if ('every' in valid) {
    return { spec: valid, due: (records) => records >= valid.every, describe: () => `every ${valid.every} records` };
  }
  return { spec: valid, due: (records, elapsedMs) => records > 0 && elapsedMs >= valid.everyMs, describe: () => `every ${valid.everyMs} ms` };
}
