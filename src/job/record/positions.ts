// Positions as the record loop checks them: JSON, and numbers strictly increasing (a resume asks
// for the records strictly after a checkpoint's position, so a position out of order would skip or redo).
import type { JsonValue } from '../../json.ts';

export function isJsonScalar(value: unknown): value is JsonValue {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** Why `next` cannot follow `previous` as a position, if it cannot (only numbers are compared). */
export function positionProblem(previous: JsonValue | null, next: unknown): string | undefined {
  if (next === undefined || typeof next === 'function' || typeof next === 'symbol' || typeof next === 'bigint') {
    return `the source yielded a position that is not JSON (${typeof next})`;
  }
  if (typeof next === 'number' && !Number.isFinite(next)) return `the source yielded position ${next}, which JSON cannot hold`;
  if (typeof next === 'number' && typeof previous === 'number' && !(next > previous)) {
    return `the source yielded position ${next} after ${previous}`;
  }
  return undefined;
}
