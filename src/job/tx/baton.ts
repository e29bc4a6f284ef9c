/**
 * The right to write through the shard's one transaction. Records in flight interleave on one
 * connection, and SQL savepoints nest like a stack, so two records holding savepoints at once
 * would let one's rollback undo the other's writes. A record takes the baton at its first
 * `ctx.tx` use and keeps it until it finishes (release or rollback of its savepoint), so each
 * record's writes are one contiguous savepoint. Records that never touch `ctx.tx` run freely.
 */
export class Baton {
  #tail: Promise<void> = Promise.resolve();
  #held = false;
  readonly #onIdle: () => void;

  /** `onIdle` runs each time the baton is put down, before the next holder gets it. */
  constructor(onIdle: () => void = () => undefined) {
    this.#onIdle = onIdle;
  }

  get held(): boolean {
    return this.#held;
  }

  async acquire(): Promise<() => void> {
    let open!: () => void;
    const next = new Promise<void>((resolve) => {
      open = resolve;
    });
    const previous = this.#tail;
    this.#tail = previous.then(() => next);
    await previous;
    this.#held = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held = false;
      this.#onIdle();
      open();
    };
  }
}
