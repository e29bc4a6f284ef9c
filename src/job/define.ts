import type { EventListener } from '../events.ts';
import type { JsonObject } from '../json.ts';
import type { Source } from '../source/source.ts';
import type { SqlHandle } from '../store/store.ts';
import type { CheckpointSpec } from './policy.ts';

export interface JobLogger {
  info(message: string, data?: unknown): void;
  warn(message: string, data?: unknown): void;
  error(message: string, data?: unknown): void;
}

/** What `process` sees for each record. */
export interface JobContext<Params, State extends JsonObject> {
  readonly job: string;
  readonly params: Params;
  readonly shard: string;
  /** Position of this record in its shard's source. */
  readonly position: unknown;
  /** Saved with every checkpoint and restored on resume; mutate it in place. */
  readonly state: State;
  /** Aborted when the run stops (signal, lost lease, failure): finish or give up quickly. */
  readonly signal: AbortSignal;
  readonly log: JobLogger;
  /** SQL inside the transaction that commits with the checkpoint covering this record. */
  readonly tx: SqlHandle;
}

export interface JobDefinition<Record, Params, State extends JsonObject, Position> {
  name: string;
  /** A stamp of the job's code: a resume under another version is drift. */
  version?: string;
  /** Parse raw `--param k=v` values; throw to reject them (the CLI exits 2). */
  params?: (raw: { [key: string]: string }) => Params;
  source: (input: { params: Params; shard: string }) => Source<Record, Position> | Promise<Source<Record, Position>>;
  /** Independent slices of the instance, each with its own checkpoint; default one shard. */
  shards?: (input: { params: Params }) => string[] | Promise<string[]>;
  /** The state a shard starts from; default `{}`. */
  initialState?: (input: { params: Params; shard: string }) => State;
  checkpoint?: CheckpointSpec;
  /** Records in flight at once in one process; default 1. */
  concurrency?: number;
  process(record: Record, ctx: JobContext<Params, State>): unknown;
}

const jobBrand = Symbol.for('checkpointed.job');

export type Job<Record = unknown, Params = unknown, State extends JsonObject = JsonObject, Position = unknown> = Readonly<
  JobDefinition<Record, Params, State, Position>
> & { readonly [jobBrand]: true };

/** Any job, whatever its record, params, state and position types (what the runner accepts). */
// biome-ignore lint/suspicious/noExplicitAny: the runner is generic over every job's own types
export type AnyJob = Job<any, any, any, any>;

/** Declare a job; a job file default-exports the result. */
export function defineJob<Record, Params = { [key: string]: string }, State extends JsonObject = JsonObject, Position = unknown>(
  definition: JobDefinition<Record, Params, State, Position>,
): Job<Record, Params, State, Position> {
  if (definition === null || typeof definition !== 'object') throw new TypeError('defineJob needs an object');
  if (typeof definition.name !== 'string' || !/^[A-Za-z0-9][\w.-]*$/.test(definition.name)) {
    throw new TypeError(`defineJob: name must be letters, digits, '.', '-' or '_' (got ${JSON.stringify(definition.name)})`);
  }
  if (typeof definition.source !== 'function') throw new TypeError(`defineJob(${definition.name}): source must be a function`);
  if (typeof definition.process !== 'function') throw new TypeError(`defineJob(${definition.name}): process must be a function`);
  if (definition.concurrency !== undefined && !(Number.isInteger(definition.concurrency) && definition.concurrency >= 1)) {
    throw new TypeError(`defineJob(${definition.name}): concurrency must be a whole number ≥ 1`);
  }
  return Object.freeze({ ...definition, [jobBrand]: true as const });
}

export function isJob(value: unknown): value is Job {
  return value !== null && typeof value === 'object' && (value as { [jobBrand]?: unknown })[jobBrand] === true;
}

export type { EventListener };
