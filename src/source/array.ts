import { hashJson } from '../json.ts';
import { countingCursor } from './cursor.ts';
import type { Source } from './source.ts';

/** The items of an array; the position is the index. */
export function fromArray<R>(items: readonly R[]): Source<R, number> {
  return {
    async *read(after, { signal }) {
      for (let index = after === undefined ? 0 : after + 1; index < items.length; index++) {
        if (signal.aborted) return;
        yield { position: index, record: items[index] as R };
      }
    },
    cursor(after, { signal }) {
      return countingCursor(after === undefined ? 0 : after + 1, items.length, (index) => items[index] as R, signal);
    },
    async size() {
      return items.length;
    },
    async fingerprint() {
      return `array:${items.length}:${hashJson(items)}`;
    },
  };
}
