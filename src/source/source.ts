/** One record and where it sits in its shard's source. */
export interface SourceItem<R, P> {
  position: P;
  record: R;
  /** Set when the source could not decode this record: it is treated as a record that fails. */
  error?: Error;
}

/**
 * Where a shard's records come from. Positions are JSON-serialisable and ordered: a resume asks
 * for the records strictly after the position of the last record whose work is done.
 */
export interface Source<R, P = unknown> {
  /** Records strictly after `after` (undefined: from the start), in position order. */
  read(after: P | undefined, opts: { signal: AbortSignal }): AsyncIterable<SourceItem<R, P>>;
  /** Total records, when cheap to know (progress bar, ETA). */
  size?(): Promise<number | undefined>;
  /** Identity of the data the positions point into (file size + mtime + head hash, …). */
  fingerprint?(): Promise<string>;
}
