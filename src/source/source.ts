/** One record and where it sits in its shard's source. */
export interface SourceItem<R, P> {
  position: P;
  record: R;
  /** Set when the source could not decode this record: it is treated as a record that fails. */
  error?: Error;
}

/** How a read goes: `signal` ends it; `follow` (a source that can wait for more, a stream) asks it not to end at the head but wait there. */
export interface ReadOptions {
  signal: AbortSignal;
  follow?: boolean;
  /**
   * The data may still be appended to as it is read (an incremental job): a file source leaves a
   * last line that has no line break yet (a writer mid-line) for the next read instead of reading
   * it half.
   */
  growing?: boolean;
}

/** How far a position is behind its source's head: records, and time where the source knows it. */
export interface Lag {
  records: number;
  ms?: number;
}

/**
 * Where a shard's records come from. Positions are JSON-serialisable and ordered: a resume asks
 * for the records strictly after the position of the last record whose work is done.
 */
export interface Source<R, P = unknown> {
  /** Records strictly after `after` (undefined: from the start), in position order. */
  read(after: P | undefined, opts: ReadOptions): AsyncIterable<SourceItem<R, P>>;
  /**
   * Optional fast path: the same records as `read`, walked without a promise or an object per
   * record (sources that hold records in memory: a range, an array, a page already fetched).
   */
  cursor?(after: P | undefined, opts: ReadOptions): SourceCursor<R, P>;
  /** Total records, when cheap to know (progress bar, ETA). */
  size?(): Promise<number | undefined>;
  /** Identity of the data the positions point into (file size + mtime + head hash, …). */
  fingerprint?(): Promise<string>;
  /** Whether the data still extends what `fingerprint` described up to `position` (an incremental run: appended, not rewritten). */
  continues?(fingerprint: string, position: P): Promise<boolean>;
  /** How far `position` is behind the source's head now (a follower's lag, in `ckpt status --json`). */
  behind?(position: P | undefined): Promise<Lag>;
  /** Called by the runner after each checkpoint commits, with its position: acknowledge upstream only what is durable (XACK). */
  committed?(position: P): Promise<void> | void;
}

/**
 * Records the runner takes one by one without waiting while they are at hand, and waits for only
 * when they are not. `record`, `position` and `error` describe the record `next` moved to; they
 * are overwritten by the next call, so the runner reads them at once.
 */
export interface SourceCursor<R, P> {
  /** Moves to the next record at hand: true, it is in `record`/`position`; false, none at hand now (call `more`). */
  next(): boolean;
  readonly record: R;
  readonly position: P;
  /** Set when the source could not decode this record (it fails like a record that throws). */
  readonly error?: Error | undefined;
  /** Resolves true once `next` has records again, false when the source is exhausted. */
  more(): Promise<boolean>;
  /** Stops reading early (releases files, connections). */
  close(): Promise<void> | void;
}
