import type { EventMap } from '../events.ts';
import type { JsonObject, JsonValue } from '../json.ts';
import type { SqlHandle, Tx } from '../store/store.ts';
import type { JobContext, JobLogger } from './define.ts';

/** The `ctx` of one record; `tx` is the transaction its checkpoint will commit. */
export class RecordContext<Params, State extends JsonObject> implements JobContext<Params, State> {
  readonly job: string;
  readonly params: Params;
  readonly shard: string;
  readonly position: unknown;
  readonly state: State;
  readonly signal: AbortSignal;
  readonly log: JobLogger;
  readonly #tx: Tx;

  constructor(init: { job: string; params: Params; shard: string; position: unknown; state: State; signal: AbortSignal; log: JobLogger; tx: Tx }) {
    this.job = init.job;
    this.params = init.params;
    this.shard = init.shard;
    this.position = init.position;
    this.state = init.state;
    this.signal = init.signal;
    this.log = init.log;
    this.#tx = init.tx;
  }

  get tx(): SqlHandle {
    const sql = this.#tx.sql;
    if (sql === undefined) throw new Error('ctx.tx needs a SQL store (sqlite: or postgres:); this store has no SQL');
    return sql;
  }
}

/** A logger whose lines become `log` events (printed by the CLI, never stored). */
export function eventLogger(shard: string, emit: (data: EventMap['log']) => void): JobLogger {
  const line = (level: EventMap['log']['level']) => (message: string, data?: unknown) =>
    emit(data === undefined ? { shard, level, message: String(message) } : { shard, level, message: String(message), data: toJson(data) });
  return { info: line('info'), warn: line('warn'), error: line('error') };
}

function toJson(value: unknown): JsonValue {
  try {
    return JSON.parse(JSON.stringify(value)) as JsonValue;
  } catch {
    return String(value);
  }
}
