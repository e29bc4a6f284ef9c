import { isDeepStrictEqual } from 'node:util';
import type { Source } from './source.ts';

/** What a cursor hands over: records one by one, async or not. */
export type IterableRecords<R> = AsyncIterable<R> | Iterable<R>;

export interface FromAsyncIterableOptions<R, P> {
  /** Where a record sits: its key, cursor or offset. JSON, unique, increasing in read order. */
  position: (record: R) => P;
  /**
   * How a resume reaches the records after a position. `'seek'` (default for a function): the
   * function is handed the position and starts strictly after it (`WHERE id > $after`, a
   * `startAfter` token). `'skip'` (the only choice for a ready iterable): read from the start
   * and drop records up to and including the one at that position — correct, but a resume
   * costs a re-read; the position must turn up again, or the read fails.
   */
  resume?: 'seek' | 'skip';
  size?: () => Promise<number | undefined>;
  fingerprint?: () => Promise<string>;
}

/**
 * A Source from any cursor: a function `(after, { signal }) => iterable` that starts strictly
 * after a position, or a ready (async) iterable, e.g. a driver's cursor or a generator.
 */
export function fromAsyncIterable<R, P>(
  records: IterableRecords<R> | ((after: P | undefined, opts: { signal: AbortSignal }) => IterableRecords<R> | Promise<IterableRecords<R>>),
  options: FromAsyncIterableOptions<R, P>,
): Source<R, P> {
  const opener = typeof records === 'function';
  const resume = options.resume ?? (opener ? 'seek' : 'skip');
  if (!opener && resume === 'seek')
    throw new TypeError('fromAsyncIterable: a ready iterable cannot seek; pass a function (after) => iterable, or resume: "skip"');
  let opened = false;
  return {
    async *read(after, { signal }) {
      // A generator is used up by one read: a second read (a retried run in the same process)
      // would silently see nothing, so it is refused.
      if (!opener && opened && !isReiterable(records))
        throw new Error('fromAsyncIterable: this iterable was already read; pass a function that opens a new one');
      opened = true;
      const source = opener ? await records(resume === 'seek' ? after : undefined, { signal }) : records;
      let skipping = resume === 'skip' && after !== undefined;
      for await (const record of source) {
        if (signal.aborted) return;
        const position = options.position(record);
        if (skipping) {
          if (isDeepStrictEqual(position, after)) skipping = false;
          continue;
        }
        yield { position, record };
      }
      if (skipping)
        throw new Error(`fromAsyncIterable: the resume position ${JSON.stringify(after)} never came up again; the data changed under the checkpoint`);
    },
    ...(options.size === undefined ? {} : { size: options.size }),
    ...(options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint }),
  };
}

/** An array gives a fresh iterator each time; a generator, a stream or a driver's cursor does not. */
function isReiterable(records: IterableRecords<unknown>): boolean {
  return Array.isArray(records);
}
