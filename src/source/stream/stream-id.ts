/** A Redis stream entry ID, `<ms>-<seq>`, both unsigned 64-bit. */
export type StreamId = string;

/**
 * Orders two entry IDs as Redis does: by milliseconds, then by sequence, as numbers (so
 * `9-0` < `10-0`, which string order gets wrong). A missing sequence counts as 0.
 */
export function compareStreamIds(a: StreamId, b: StreamId): number {
  const [aMs, aSeq] = parts(a);
  const [bMs, bSeq] = parts(b);
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  if (aSeq !== bSeq) return aSeq < bSeq ? -1 : 1;
  return 0;
}

function parts(id: StreamId): [bigint, bigint] {
  const match = /^(\d+)(?:-(\d+))?$/.exec(id);
  if (match === null) throw new TypeError(`not a Redis stream entry ID: ${JSON.stringify(id)}`);
  return [BigInt(match[1] as string), BigInt(match[2] ?? '0')];
}
