import { StoreIdentityError } from '../../errors.ts';
import { keyMismatch } from '../audit-chain.ts';
import { toEvent } from '../rows.ts';
import type { ChainHead } from '../store.ts';
import type { ChainKeyGuard, SqlDriver, SqlQueryable } from './sql-driver.ts';

/**
 * A server store keeps no key file and no record of its secret key, so the chain itself says
 * which key may extend it: before linking from a head it read (under the head's row lock), a
 * writer checks the instance's last event against its own key. A chain keyed with a secret key
 * takes only that key: a run with another CKPT_SECRET_KEY, or none, is refused (exit 4) before
 * it writes anything, instead of linking events no key verifies, which would break the audit
 * trail for good (SQLite refuses the same through `<store>.key` and its recorded fingerprint).
 * An unkeyed chain (or a new one) takes any key. Heads this process linked or checked are not
 * checked again: one read of one row, only when another writer moved the head.
 */
export class ChainKeyCheck implements ChainKeyGuard {
  readonly #prefix: string;
  readonly #key: () => Buffer | undefined;
  /** Per instance, the head hash this process last linked or found linkable. */
  readonly #fine = new Map<number, string>();

  constructor(prefix: string, key: () => Buffer | undefined) {
    this.#prefix = prefix;
    this.#key = key;
  }

  /** Throws StoreIdentityError unless this process's key may link from `head` (read on `on`, locked). */
  async check(on: SqlQueryable, instanceId: number, head: ChainHead): Promise<void> {
    if (head.seq === 0 || this.#fine.get(instanceId) === head.hash) return;
    const row = (await on.query(`SELECT * FROM ${this.#prefix}events WHERE instance_id = ? ORDER BY id DESC LIMIT 1`, [instanceId])).rows[0];
    const last = row === undefined ? undefined : toEvent(row);
    // A last event that is not the head's is damage `ckpt audit --verify` reports, not a key's doing.
    const problem = last?.chain?.seq === head.seq ? keyMismatch(last, this.#key()) : undefined;
    if (problem === 'missing') {
      throw new StoreIdentityError(
        `instance ${instanceId}'s audit log is keyed with a secret key, which is not set here: set CKPT_SECRET_KEY as its runs had it; an event written without it would break the chain for good`,
      );
    }
    if (problem === 'other') {
      throw new StoreIdentityError(
        `CKPT_SECRET_KEY is not the key instance ${instanceId}'s audit log was keyed with (its last event does not verify with it): set the key its runs had; ` +
          'events linked with another key would break the chain for good (if the key is right, that event was edited: ckpt audit --verify says which)',
      );
    }
    this.#fine.set(instanceId, head.hash);
  }

  /** `head` was linked by this process: linking from it again needs no check. */
  linked(instanceId: number, head: ChainHead): void {
    this.#fine.set(instanceId, head.hash);
  }
}

/**
 * The check before a writer's first write (a run's start, a crashed run about to be marked), on
 * the pool, without the head's lock: an early answer, so nothing is written by a writer that
 * would be refused at its first append; every append checks again under the lock.
 */
export async function checkChainKeyNow(db: Pick<SqlDriver, 'prefix' | 'rows' | 'run' | 'chainKeyCheck'>, instanceId: number): Promise<void> {
  const head = (await db.rows(`SELECT seq, hash FROM ${db.prefix}chain_heads WHERE instance_id = ?`, [instanceId]))[0];
  if (head === undefined) return;
  await db.chainKeyCheck.check({ query: (sql, values) => db.run(sql, values) }, instanceId, { seq: Number(head.seq), hash: String(head.hash) });
}
