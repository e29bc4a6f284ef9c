import type { JsonObject } from '../../json.ts';
import { RecordTx } from '../tx/record-tx.ts';
import type { RecordContext } from './context.ts';
import { type RecordRunInput, recordContext } from './record-run.ts';

/** One record's share of a context: its `ctx`, and its `ctx.tx` once used. */
export interface Slot {
  ctx: RecordContext<unknown, JsonObject>;
  /** The record's `ctx.tx`, once it used it. */
  tx: RecordTx | undefined;
  /** This context's `ctx.tx` handle, renewed for each of its records that uses one. */
  kept: RecordTx | undefined;
}

/**
 * The contexts of a record loop: records that finish synchronously (or one at a time, at
 * concurrency 1) share one, moved on per record; a record in flight beside others keeps its own
 * until it settles, and gives it back for the next.
 */
export class SlotPool {
  readonly #input: RecordRunInput;
  readonly #savepoint: boolean;
  readonly #spare: Slot[] = [];

  /** `savepoint`: records need their own savepoint (their failure can be retried or dead-lettered). */
  constructor(input: RecordRunInput, savepoint: boolean) {
    this.#input = input;
    this.#savepoint = savepoint;
  }

  take(): Slot {
    const spare = this.#spare.pop();
    if (spare !== undefined) return spare;
    const input = this.#input;
    const slot: Slot = {
      tx: undefined,
      kept: undefined,
      ctx: recordContext(input, undefined, (sql) => {
        if (slot.tx === undefined) {
          slot.tx = slot.kept === undefined ? new RecordTx(input.baton, input.chunk, sql, this.#savepoint) : slot.kept.renew(sql);
          slot.kept = slot.tx;
        }
        return slot.tx;
      }),
    };
    return slot;
  }

  /** A settled record's context, for the next record in flight. */
  give(slot: Slot): void {
    slot.tx = undefined;
    this.#spare.push(slot);
  }
}
