/**
 * The state a checkpoint stores is JSON: whatever else it holds would come back as something else
 * after a resume (a Set or a Map as `{}`, a Date as a string, NaN and Infinity as null, a BigInt
 * not at all), so the job would run on with a state of another type than the one it saved. The
 * checkpoint refuses such a state instead, naming where the value is and what it is.
 */

/** Where the state holds a value JSON would not give back as it is, in words; undefined when it is all JSON. */
export function stateProblem(state: unknown): string | undefined {
  return problemAt(state, 'state', 0);
}

/** Deeper than this is a cycle in all but name (JSON.stringify would throw on a true one). */
const MAX_DEPTH = 1000;

function problemAt(value: unknown, path: string, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON stores as null`;
    case 'bigint':
      return `${path} is a BigInt, which JSON cannot store (keep it as a string)`;
    case 'undefined':
      // An object's undefined property is left out and reads undefined again: only an array's is changed (to null).
      return `${path} is undefined, which JSON stores as null in an array`;
    case 'function':
    case 'symbol':
      return `${path} is a ${typeof value}, which JSON cannot store`;
    default:
      break;
  }
  if (value === null) return undefined;
  if (depth > MAX_DEPTH) return `${path} is nested more than ${MAX_DEPTH} levels deep (a cycle?)`;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const problem = problemAt(value[index], `${path}[${index}]`, depth + 1);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    const kind = (value as object).constructor?.name ?? 'object';
    const back = value instanceof Date ? 'a string' : typeof (value as { toJSON?: unknown }).toJSON === 'function' ? 'what its toJSON returns' : '{}';
    return `${path} is a ${kind}, which comes back from JSON as ${back} (store an array, a plain object or a string instead)`;
  }
  for (const key of Object.keys(value as object)) {
    const entry = (value as Record<string, unknown>)[key];
    if (entry === undefined) continue;
    const problem = problemAt(entry, /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`, depth + 1);
    if (problem !== undefined) return problem;
  }
  return undefined;
}
