import { countingCursor } from './cursor.ts';
import type { Source } from './source.ts';

/** The integers `from` ≤ n < `to`; the position is the number itself. */
export function range(from: number, to: number): Source<number, number> {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) {
    throw new TypeError(`range(${from}, ${to}): both ends must be safe integers`);
  }
  return {
    async *read(after, { signal }) {
      for (let n = after === undefined ? from : after + 1; n < to; n++) {
        if (signal.aborted) return;
        yield { position: n, record: n };
      }
    },
    cursor(after, { signal }) {
      return countingCursor(after === undefined ? from : after + 1, to, (n) => n, signal);
    },
    async size() {
      return Math.max(0, to - from);
    },
    async fingerprint() {
      return `range:${from}:${to}`;
    },
  };
}
