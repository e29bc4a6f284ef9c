import { chainGenerations } from '../audit-chain.ts';
import { batchEvents, completions, entryKey, fastEligible, fenceBatch, isStale, type KeyedWrite, toHolder } from '../journal-fence.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectJournalParts, EffectScope, JournalFence, JournalOutcome, JournalWrite } from '../store.ts';
import { limitBatch } from './guards.ts';
import type { EffectKey, ServerJournal, SqlBackend, SqlDriver, SqlQueryable } from './sql-driver.ts';

/**
 * The entries of `writes`' keys, by entryKey, read on `on` (a transaction's connection, or the
 * pool): one statement whatever their number.
 */
export async function readEntries(
  on: SqlQueryable,
  prefix: string,
  effectKey: EffectKey,
  instanceId: number,
  writes: readonly KeyedWrite[],
): Promise<Map<string, EffectEntry>> {
  const entries = new Map<string, EffectEntry>();
  const first = writes[0];
  if (first === undefined) return entries;
  const { column } = effectKey(first.key);
  const keys = new Map(writes.map((write) => [`${write.scope.generation}:${effectKey(write.key).value}`, write.key]));
  const rows = (
    await on.query(`SELECT * FROM ${prefix}effects WHERE instance_id = ? AND (generation, ${column}) IN (${writes.map(() => '(?, ?)').join(', ')})`, [
      instanceId,
      ...writes.flatMap((write) => [write.scope.generation, effectKey(write.key).value]),
    ])
  ).rows;
  for (const row of rows) {
    const key = keys.get(`${row.generation}:${row[column]}`);
    if (key !== undefined) entries.set(entryKey(Number(row.generation), key), toEffect(key, row));
  }
  return entries;
}

/**
 * The effect journal of a PostgreSQL or MySQL store, written on pooled connections, never in the
 * job's transaction: an intent is durable before the effect runs, whatever becomes of the chunk.
 * A batch goes the server's fast way when it can; else it is one short transaction that takes
 * its locks in the order every batch (and a checkpoint's commit) takes them: the shard row
 * (share-locked, the fence), the limited kinds' counters, the chain head. The head's row lock
 * orders the batches of every worker on the instance, so a claim never races another worker's
 * claim of the same key, and ids and chain positions ascend together.
 */
export class SqlJournal implements EffectJournalParts {
  readonly #db: SqlDriver;
  readonly #server: ServerJournal;
  readonly #effectKey: EffectKey;

  constructor(driver: SqlDriver, backend: Pick<SqlBackend<unknown>, 'journal' | 'effectKey'>) {
    this.#db = driver;
    this.#server = backend.journal;
    this.#effectKey = backend.effectKey;
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const by = this.#effectKey(key);
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.prefix}effects WHERE instance_id = ? AND generation = ? AND ${by.column} = ?`, [
      scope.instanceId,
      scope.generation,
      by.value,
    ]);
    const row = rows[0];
    return row === undefined ? undefined : toEffect(key, row);
  }

  async journal(instanceId: number, writes: readonly JournalWrite[], fence?: JournalFence): Promise<JournalOutcome[]> {
    const db = this.#db;
    const heads = this.#server.heads;
    const cached = heads.get(instanceId);
    if (cached !== undefined && fastEligible(writes)) {
      const chained = chainGenerations(instanceId, cached, batchEvents(writes), db.chainKey(), db.clockOffsetMs);
      if (await this.#server.fast(instanceId, writes, fence, cached, chained)) {
        heads.set(instanceId, chained.head);
        db.chainKeyCheck.linked(instanceId, chained.head);
        return writes.map(() => undefined);
      }
    }
    const done = await db.transaction(async (on) => {
      const fenced = await this.#fence(on, instanceId, writes, fence);
      // Effect limits: counted under the counters' row locks, before any claim is written.
      const limited = await limitBatch(on, db, this.#effectKey, instanceId, fenced.writes);
      const written = await this.#server.writeEntries(on, instanceId, limited.writes);
      const chained = chainGenerations(instanceId, written.head, batchEvents(limited.writes, written.outcomes), db.chainKey(), db.clockOffsetMs);
      if (chained.rows.length > 0) {
        // Refused (rolled back whole) if this key may not extend the chain it found.
        await db.chainKeyCheck.check(on, instanceId, written.head);
        await this.#server.appendEvents(on, instanceId, chained);
      }
      return { outcomes: fenced.answer(limited.answer(written.outcomes)), head: chained.head };
    });
    heads.set(instanceId, done.head);
    db.chainKeyCheck.linked(instanceId, done.head);
    return done.outcomes;
  }

  /**
   * First in the locked way's transaction: the shard row, share-locked so that no claim of the
   * shard commits before this batch does. A stale token makes the batch what fenceBatch says.
   */
  async #fence(
    on: SqlQueryable,
    instanceId: number,
    writes: readonly JournalWrite[],
    fence: JournalFence | undefined,
  ): Promise<{ writes: readonly JournalWrite[]; answer: (applied: readonly JournalOutcome[]) => JournalOutcome[] }> {
    const same = { writes, answer: (applied: readonly JournalOutcome[]) => [...applied] };
    if (fence === undefined) return same;
    const { prefix: p, dialect } = this.#db;
    const holder = toHolder((await on.query(`SELECT lease_token, run_id FROM ${p}shards WHERE id = ? ${dialect.shareLock}`, [fence.shardId])).rows[0]);
    if (!isStale(fence, holder)) return same;
    const entries = await readEntries(on, p, this.#effectKey, instanceId, completions(writes));
    const fenced = fenceBatch(writes, fence, holder, entries);
    return { writes: fenced.writes, answer: fenced.outcomes };
  }
}
