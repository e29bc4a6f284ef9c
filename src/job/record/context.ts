import type { EventMap } from '../../events.ts';
import type { JsonObject, JsonValue } from '../../json.ts';
import { redactJson, redactText } from '../../redact.ts';
import type { JobContext, JobLogger, OnceOptions } from '../define.ts';
import type { DeferredWrites, Effects } from '../effects/effects.ts';
import type { TxHandle } from '../tx/record-tx.ts';

/**
 * The `ctx` of one record attempt; `tx` writes into the transaction its checkpoint will commit.
 * Records that finish synchronously share one, moved on with `reuse` (no object per record).
 */
export class RecordContext<Params, State extends JsonObject> implements JobContext<Params, State>, DeferredWrites {
  readonly job: string;
  readonly params: Params;
  readonly shard: string;
  readonly fencingToken: number;
  position: unknown;
  readonly state: State;
  readonly signal: AbortSignal;
  readonly log: JobLogger;
  readonly #sql: () => TxHandle | undefined;
  #handle: TxHandle | undefined;
  readonly #effects: Effects;
  /** Journal writes of this record's effects not yet known durable (completions queued by ctx.once). */
  #deferred: Promise<unknown> | undefined;

  constructor(init: {
    job: string;
    params: Params;
    shard: string;
    /** The lease's token (a dead-letter retry, which holds none: the shard's current one). */
    fencingToken: number;
    position: unknown;
    state: State;
    signal: AbortSignal;
    log: JobLogger;
    /** Opens the record's share of the transaction on first use; undefined: the store has no SQL. */
    sql: () => TxHandle | undefined;
    effects: Effects;
  }) {
    this.job = init.job;
    this.params = init.params;
    this.shard = init.shard;
    this.fencingToken = init.fencingToken;
    this.position = init.position;
    this.state = init.state;
    this.signal = init.signal;
    this.log = init.log;
    this.#sql = init.sql;
    this.#effects = init.effects;
  }

  /** The next record's turn of a shared context (the previous one has finished). */
  reuse(position: unknown): void {
    this.position = position;
    this.#handle = undefined;
  }

  get tx(): TxHandle {
    this.#handle ??= this.#sql();
    if (this.#handle === undefined) throw new Error('ctx.tx needs a SQL store (sqlite:, postgres:// or mysql://); this store has no SQL');
    return this.#handle;
  }

  once<T>(key: string, fn: () => T | Promise<T>, options?: OnceOptions<T>): Promise<T | undefined> {
    return this.#effects.once(key, fn, options, this);
  }

  step<T>(name: string, fn: () => T | Promise<T>, options?: OnceOptions<T>): Promise<T> {
    return this.#effects.step(this.position, name, fn, options, this);
  }

  defer(write: Promise<unknown>): void {
    // Awaited by `durable`; until then a rejection is this record's failure, not an unhandled one.
    write.catch(() => undefined);
    this.#deferred = this.#deferred === undefined ? write : Promise.all([this.#deferred, write]);
  }

  /**
   * Resolves when every journal write this record's effects deferred is durable (rejects if one
   * failed), or undefined when there is none: whoever runs a record awaits it before counting the
   * record as finished, so no checkpoint covers a record whose effect completion could be lost.
   */
  durable(): Promise<unknown> | undefined {
    const deferred = this.#deferred;
    this.#deferred = undefined;
    return deferred;
  }

  approval(name: string, options?: { summary?: string }): Promise<void> {
    return this.#effects.approval(name, options);
  }

  idempotencyKey(name: string): string {
    return this.#effects.idempotencyKey(this.position, name);
  }
}

/**
 * A logger whose lines become `log` events (printed by the CLI, never stored). Screened as params
 * are (src/redact.ts): a secret-named field of the data (a job logging its params) and a URL's
 * password in the message print as `[redacted]`.
 */
export function eventLogger(shard: string, emit: (data: EventMap['log']) => void): JobLogger {
  const line = (level: EventMap['log']['level']) => (message: string, data?: unknown) => {
    const text = redactText(String(message));
    emit(data === undefined ? { shard, level, message: text } : { shard, level, message: text, data: redactJson(toJson(data)) });
  };
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
