import type { SqlHandle, Tx } from '../store/store.ts';
import type { Baton } from './baton.ts';

const SAVEPOINT = 'ckpt_record';

/**
 * One attempt of one record at the shard's transaction. The first `ctx.tx` query takes the
 * baton and opens the record's savepoint; `finish` releases it (the writes join the chunk) or
 * rolls back to it (a failed attempt leaves nothing behind), then hands the baton on. Because
 * only the baton holder has a savepoint open, one fixed savepoint name never nests.
 */
export class RecordTx {
  readonly #baton: Baton;
  readonly #tx: Tx;
  readonly #savepoint: boolean;
  #release: (() => void) | undefined;
  #entering: Promise<void> | undefined;
  #finished = false;

  /** `savepoint` false: the record's failure fails the run, which rolls back the whole chunk. */
  constructor(baton: Baton, tx: Tx, savepoint = true) {
    this.#baton = baton;
    this.#tx = tx;
    this.#savepoint = savepoint;
  }

  /** The handle `ctx.tx` returns, or undefined when the store has no SQL. */
  handle(): SqlHandle | undefined {
    const sql = this.#tx.sql;
    if (sql === undefined) return undefined;
    return {
      dialect: sql.dialect,
      query: async (text, params) => {
        await this.#enter();
        return sql.query(text, params);
      },
    };
  }

  #enter(): Promise<void> {
    if (this.#finished) return Promise.reject(new Error('ctx.tx was used after its record finished; await every query inside process()'));
    this.#entering ??= (async () => {
      this.#release = await this.#baton.acquire();
      if (this.#savepoint) await this.#tx.savepoint(SAVEPOINT);
    })();
    return this.#entering;
  }

  async finish(succeeded: boolean): Promise<void> {
    this.#finished = true;
    if (this.#entering === undefined) return;
    try {
      await this.#entering;
      if (!this.#savepoint) return;
      if (succeeded) await this.#tx.releaseSavepoint(SAVEPOINT);
      else await this.#tx.rollbackToSavepoint(SAVEPOINT);
    } finally {
      this.#release?.();
    }
  }
}
