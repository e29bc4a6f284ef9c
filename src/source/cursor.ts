import type { ReadOptions, Source, SourceCursor, SourceItem } from './source.ts';

/**
 * `read` and `cursor` of a source that fetches its records a page at a time (a query's rows, an
 * API page, a file chunk's lines): the cursor hands out a page's records without a promise per
 * record, and awaits only for the next page.
 */
export function paged<R, P>(
  pages: (after: P | undefined, opts: ReadOptions) => AsyncIterable<readonly SourceItem<R, P>[]>,
): Pick<Required<Source<R, P>>, 'read' | 'cursor'> {
  return {
    async *read(after, opts) {
      for await (const page of pages(after, opts)) {
        for (const item of page) {
          if (opts.signal.aborted) return;
          yield item;
        }
      }
    },
    cursor(after, opts) {
      return new PageCursor(pages(after, opts)[Symbol.asyncIterator]());
    },
  };
}

/** The source's own cursor when it has one, else one over its `read` (a promise per record). */
export function openCursor<R, P>(source: Source<R, P>, after: P | undefined, opts: ReadOptions): SourceCursor<R, P> {
  return source.cursor?.(after, opts) ?? new PageCursor(source.read(after, opts)[Symbol.asyncIterator]());
}

/** A cursor over integers `first` ≤ n < `end` (range, array indexes); `at(n)` gives the record. */
export function countingCursor<R>(first: number, end: number, at: (n: number) => R, signal: AbortSignal): SourceCursor<R, number> {
  return new CountingCursor(first, end, at, signal);
}

class CountingCursor<R> implements SourceCursor<R, number> {
  record!: R;
  position: number;
  readonly #end: number;
  readonly #at: (n: number) => R;
  readonly #signal: AbortSignal;
  /** The signal's state as a field: `aborted` is a getter, and next() runs per record. */
  #stopped: boolean;
  readonly #onAbort = () => {
    this.#stopped = true;
  };

  constructor(first: number, end: number, at: (n: number) => R, signal: AbortSignal) {
    this.position = first - 1;
    this.#end = end;
    this.#at = at;
    this.#signal = signal;
    this.#stopped = signal.aborted;
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  next(): boolean {
    const n = this.position + 1;
    if (n >= this.#end || this.#stopped) return false;
    this.position = n;
    this.record = this.#at(n);
    return true;
  }

  async more(): Promise<boolean> {
    return false;
  }

  close(): void {
    this.#signal.removeEventListener('abort', this.#onAbort);
  }
}

/**
 * Adapts an async iterator of pages, or of single records (a source with only `read`): the
 * records of the page at hand, then `more` for the next.
 */
class PageCursor<R, P> implements SourceCursor<R, P> {
  record!: R;
  position!: P;
  error: Error | undefined;
  readonly #pages: AsyncIterator<readonly SourceItem<R, P>[] | SourceItem<R, P>>;
  #page: readonly SourceItem<R, P>[] = [];
  #at = 0;
  #pending: Promise<IteratorResult<readonly SourceItem<R, P>[] | SourceItem<R, P>>> | undefined;

  constructor(pages: AsyncIterator<readonly SourceItem<R, P>[] | SourceItem<R, P>>) {
    this.#pages = pages;
  }

  next(): boolean {
    if (this.#at >= this.#page.length) return false;
    const item = this.#page[this.#at++] as SourceItem<R, P>;
    this.record = item.record;
    this.position = item.position;
    this.error = item.error;
    return true;
  }

  async more(): Promise<boolean> {
    // A `more` abandoned by the runner (woken by a stop or a due checkpoint) is picked up again.
    this.#pending ??= this.#pages.next();
    const pending = this.#pending;
    const result = await pending;
    if (this.#pending === pending) {
      this.#pending = undefined;
      if (!result.done) {
        // A record is an object, never an array: a single record is a page of one.
        this.#page = Array.isArray(result.value) ? result.value : [result.value as SourceItem<R, P>];
        this.#at = 0;
      }
    }
    // An empty page is not the end: the runner calls `more` again.
    return result.done !== true;
  }

  async close(): Promise<void> {
    // An async generator queues return() behind a next() still running: do not wait on that one.
    const closing = Promise.resolve(this.#pages.return?.()).catch(() => undefined);
    if (this.#pending === undefined) await closing;
  }
}
