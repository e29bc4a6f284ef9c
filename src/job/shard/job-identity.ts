import { basename } from 'node:path';
import { type AnyJob, jobFileOf } from '../define.ts';

/**
 * What identifies a job's code beyond its name: the file that defines it and the shape of its
 * initial state. Two job files that share a name (and params) would otherwise share checkpoints:
 * the second would skip the first one's records and be handed a state it never made. Stored with
 * each shard (`ShardInfo.code`) and compared when a checkpoint is resumed (`drift.ts`).
 *
 * The file is its base name: workers on several machines run the same job from different paths.
 */
export interface CodeIdentity {
  file: string;
  /** Keys and JSON types of the initial state, e.g. `{count:number,seen:array}`. */
  state: string;
}

export function codeIdentity(job: AnyJob, params: unknown, shard: string): CodeIdentity {
  const file = jobFileOf(job);
  let state: string;
  try {
    state = shapeOf(job.initialState?.({ params, shard }) ?? {}, 0);
  } catch {
    // Its failure is reported where the state is really made; the identity just cannot say.
    state = '?';
  }
  return { file: file === undefined ? '?' : basename(file), state };
}

/** The identity as stored: one JSON text. */
export function codeText(identity: CodeIdentity): string {
  return JSON.stringify(identity);
}

/** How a stored identity differs from today's, in words; none when they agree or the stored one is unknown. */
export function codeChanges(stored: string | null, now: CodeIdentity): string[] {
  if (stored === null) return [];
  let before: Partial<CodeIdentity>;
  try {
    before = JSON.parse(stored) as Partial<CodeIdentity>;
  } catch {
    return [`job code changed (its stored identity ${JSON.stringify(stored)} does not parse)`];
  }
  const changes: string[] = [];
  if (before.file !== undefined && before.file !== now.file) changes.push(`job file changed from ${before.file} to ${now.file}`);
  if (before.state !== undefined && before.state !== now.state) changes.push(`initial state's shape changed from ${before.state} to ${now.state}`);
  return changes;
}

const MAX_DEPTH = 3;

function shapeOf(value: unknown, depth: number): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value !== 'object') return typeof value;
  if (depth >= MAX_DEPTH) return 'object';
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${key}:${shapeOf((value as Record<string, unknown>)[key], depth + 1)}`).join(',')}}`;
}
