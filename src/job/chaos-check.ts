import type { RunInfo, StoredEvent } from '../store/store.ts';

/**
 * What `ckpt chaos` hands a job's `invariant` (or `verify`) export once the job has completed
 * (or ended held where `--expect-hold` said) under its kills: enough to check the end state the
 * job's side effects left behind.
 */
export interface ChaosCheckInput {
  /** The job's parsed params. */
  params: unknown;
  /** The scratch directory the job was told to keep its own state in (`CKPT_CHAOS_DIR`). */
  dir: string;
  /**
   * The scratch store's URL: `sqlite:PATH`; with `--store postgres://…` the URL of a scratch
   * schema (`?schema=`, and `options` setting the search_path to it), with `mysql://…` of a
   * scratch database. Where rows written through `ctx.tx` are.
   */
  store: string;
  /** The instance's stored events, oldest first (`effect:in-doubt` among them). */
  events: StoredEvent[];
  /** Every run of the instance, newest first. */
  runs: RunInfo[];
  /**
   * The holds open at the end (`point:<name>`, `limit:<kind>`): empty when the job completed.
   * Held where expected, nothing past the hold may have happened, and the check can say so.
   */
  held: string[];
}

/** Throw, or return false or a message, to report a violation; anything else passes. */
export type ChaosInvariant = (input: ChaosCheckInput) => unknown;

/** What `ckpt chaos` hands a job's `prepareStore` export on each fresh scratch store, before the job's first run there. */
export type ChaosPrepareInput = Pick<ChaosCheckInput, 'params' | 'dir' | 'store'>;

/**
 * Creates what the job expects to exist on its store before it runs (its tables: on MySQL
 * `ctx.tx` refuses DDL, so they cannot come from `setup`). A throw ends chaos (exit 2).
 */
export type ChaosPrepareStore = (input: ChaosPrepareInput) => unknown;
