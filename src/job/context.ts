import type { EventMap } from '../events.ts';
import type { JsonObject, JsonValue } from '../json.ts';
import type { SqlHandle } from '../store/store.ts';
import type { JobContext, JobLogger, OnceOptions } from './define.ts';
import type { Effects } from './effects.ts';
import { type JobSql, jobSql } from './job-sql.ts';

/** The `ctx` of one record attempt; `tx` writes into the transaction its checkpoint will commit. */
export class RecordContext<Params, State extends JsonObject> implements JobContext<Params, State> {
  readonly job: string;
  readonly params: Params;
  readonly shard: string;
  readonly position: unknown;
  readonly state: State;
  readonly signal: AbortSignal;
  readonly log: JobLogger;
  readonly #sql: () => SqlHandle | undefined;
  #handle: JobSql | undefined;
  readonly #effects: Effects;

  constructor(init: {
    job: string;
    params: Params;
    shard: string;
    position: unknown;
    state: State;
    signal: AbortSignal;
    log: JobLogger;
    /** Opens the record's share of the transaction on first use; undefined: the store has no SQL. */
    sql: () => SqlHandle | undefined;
    effects: Effects;
  }) {
    this.job = init.job;
    this.params = init.params;
    this.shard = init.shard;
    this.position = init.position;
    this.state = init.state;
    this.signal = init.signal;
    this.log = init.log;
    this.#sql = init.sql;
    this.#effects = init.effects;
  }

  get tx(): JobSql {
    if (this.#handle === undefined) {
      const handle = this.#sql();
      if (handle === undefined) throw new Error('ctx.tx needs a SQL store (sqlite:, postgres:// or mysql://); this store has no SQL');
      this.#handle = jobSql(handle);
    }
    return this.#handle;
  }

  once<T>(key: string, fn: () => T | Promise<T>, options?: OnceOptions<T>): Promise<T | undefined> {
    return this.#effects.once(key, fn, options);
  }

  step<T>(name: string, fn: () => T | Promise<T>, options?: OnceOptions<T>): Promise<T> {
    return this.#effects.step(this.position, name, fn, options);
  }

  idempotencyKey(name: string): string {
    return this.#effects.idempotencyKey(this.position, name);
  }
}

/** A logger whose lines become `log` events (printed by the CLI, never stored). */
export function eventLogger(shard: string, emit: (data: EventMap['log']) => void): JobLogger {
  const line = (level: EventMap['log']['level']) => (message: string, data?: unknown) =>
    emit(data === undefined ? { shard, level, message: String(message) } : { shard, level, message: String(message), data: toJson(data) });
  return { info: line('info'), warn: line('warn'), error: line('error') };
}

/** JSON of any value; Secrets become "[redacted]" through their toJSON. */
export function toJson(value: unknown): JsonValue {
  try {
    return JSON.parse(JSON.stringify(value) ?? 'null') as JsonValue;
  } catch {
    return String(value);
  }
}
