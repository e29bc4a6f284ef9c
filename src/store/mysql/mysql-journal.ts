import { createHash } from 'node:crypto';
import { chainGenerations, GENESIS, type GenerationEvent } from '../audit-chain.ts';
import { completions, entryKey, fenceBatch, isStale } from '../journal-fence.ts';
import { type Row, toEffect } from '../rows.ts';
import { limitBatch } from '../sql/guards.ts';
import type { ChainHead, EffectEntry, EffectJournalParts, EffectScope, JournalFence, JournalOutcome, JournalWrite } from '../store.ts';
import { type MysqlDriver, type MysqlQueryable, NOW } from './mysql-driver.ts';
import { guardTx, mysqlGuardDialect } from './mysql-guards.ts';
import { eventRow } from './mysql-history.ts';

/** Effect keys are found by their sha256: a key can be longer than an index allows. */
function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

type Keyed = Extract<JournalWrite, { key: string }>;

/** MySQL's duplicate-key error: a claim of the fast way found an entry. */
const DUPLICATE_KEY = 1062;

/** `(generation, key_hash) IN (…)` for `writes`, and its values. */
function keysIn(writes: readonly Keyed[]): { sql: string; values: unknown[] } {
  return {
    sql: `(generation, key_hash) IN (${writes.map(() => '(?, ?)').join(', ')})`,
    values: writes.flatMap((write) => [write.scope.generation, keyHash(write.key)]),
  };
}

/**
 * The effect journal of a MySQL/MariaDB store, written on pooled connections, never in the job's
 * transaction: an intent is durable before the effect runs, whatever becomes of the chunk. A
 * batch of writes is one short transaction (one commit, one redo-log flush) with multi-row
 * statements, which first takes the instance's chain head row lock: every batch on the
 * instance is ordered by it, so a claim never races another worker's claim of the same key,
 * and ids and chain positions ascend together.
 */
export class MysqlJournal implements EffectJournalParts {
  readonly #db: MysqlDriver;
  /** The chain head each instance had after this process's last batch: the fast way links from it. */
  readonly #heads = new Map<number, ChainHead>();

  constructor(driver: MysqlDriver) {
    this.#db = driver;
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.p}effects WHERE instance_id = ? AND generation = ? AND key_hash = ?`, [
      scope.instanceId,
      scope.generation,
      keyHash(key),
    ]);
    const row = rows[0];
    return row === undefined ? undefined : toEffect(key, row);
  }

  async journal(instanceId: number, writes: readonly JournalWrite[], fence?: JournalFence): Promise<JournalOutcome[]> {
    const cached = this.#heads.get(instanceId);
    // A limited claim is counted under its counter's row lock: the locked way.
    const plain = writes.every((write) => write.kind !== 'intent' && !('limit' in write && write.limit !== undefined));
    if (cached !== undefined && plain) {
      try {
        return await this.#db.transaction(async (on) => {
          const fenced = await this.#fence(on, instanceId, writes, fence);
          return fenced.answer(await this.#write(on, instanceId, fenced.writes, cached));
        });
      } catch (error) {
        if (!(error instanceof HeadMoved) && (error as { errno?: unknown }).errno !== DUPLICATE_KEY) throw error;
      }
    }
    return this.#db.transaction(async (on) => {
      const p = this.#db.p;
      const fenced = await this.#fence(on, instanceId, writes, fence);
      // Effect limits: counted under the counters' row locks, before any claim is written.
      const limited = await limitBatch(guardTx(this.#db, on), mysqlGuardDialect(this.#db), instanceId, fenced.writes);
      await on.query(`INSERT INTO ${p}chain_heads (instance_id, seq, hash) VALUES (?, 0, ?) ON DUPLICATE KEY UPDATE seq = seq`, [instanceId, GENESIS]);
      const head = (await on.query(`SELECT seq, hash FROM ${p}chain_heads WHERE instance_id = ? FOR UPDATE`, [instanceId])).rows[0] as Row;
      return fenced.answer(limited.answer(await this.#write(on, instanceId, limited.writes, { seq: Number(head.seq), hash: String(head.hash) }, true)));
    });
  }

  /**
   * First in the batch's transaction, before the chain head's lock (the order a checkpoint's
   * commit takes them in): the shard row, share-locked so no claim of the shard commits before
   * this batch does. A stale token makes the batch what fenceBatch says.
   */
  async #fence(
    on: MysqlQueryable,
    instanceId: number,
    writes: readonly JournalWrite[],
    fence: JournalFence | undefined,
  ): Promise<{ writes: readonly JournalWrite[]; answer: (applied: readonly JournalOutcome[]) => JournalOutcome[] }> {
    const same = { writes, answer: (applied: readonly JournalOutcome[]) => [...applied] };
    if (fence === undefined) return same;
    const p = this.#db.p;
    const row = (await on.query(`SELECT lease_token, run_id FROM ${p}shards WHERE id = ? LOCK IN SHARE MODE`, [fence.shardId])).rows[0] as Row | undefined;
    const holder = row === undefined ? undefined : { token: Number(row.lease_token), runId: row.run_id === null ? null : Number(row.run_id) };
    if (!isStale(fence, holder)) return same;
    const done = completions(writes);
    const entries = new Map<string, EffectEntry>();
    if (done.length > 0) {
      const keys = keysIn(done as Keyed[]);
      const rows = (await on.query(`SELECT * FROM ${p}effects WHERE instance_id = ? AND ${keys.sql}`, [instanceId, ...keys.values])).rows;
      for (const found of rows) entries.set(entryKey(Number(found.generation), String(found.effect_key)), toEffect(String(found.effect_key), found));
    }
    const fenced = fenceBatch(writes, fence, holder, entries);
    return { writes: fenced.writes, answer: fenced.outcomes };
  }

  /**
   * The batch's statements, in the caller's transaction. `locked`: the head row is locked and is
   * `head`, and claims look for entries first. Otherwise the usual case in fewer round trips: it
   * assumes the head is still the one this process last wrote (and moves it, which takes its
   * lock, only if so: else HeadMoved) and that every claim finds no entry (a plain insert: a
   * duplicate key fails the transaction). Either failure rolls back everything; the locked way
   * runs then.
   */
  async #write(on: MysqlQueryable, instanceId: number, writes: readonly JournalWrite[], head: ChainHead, locked = false): Promise<JournalOutcome[]> {
    const of = (kind: JournalWrite['kind']) => writes.filter((write): write is Keyed => write.kind === kind);
    const p = this.#db.p;
    if (!locked) {
      const events = writes.flatMap((write) => write.events.map((event) => ({ generation: write.scope.generation, event })));
      const next = chainGenerations(instanceId, head, events, this.#db.chainKey(), this.#db.clockOffsetMs).head;
      const moved = await on.query(`UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ? AND seq = ? AND hash = ?`, [
        next.seq,
        next.hash,
        instanceId,
        head.seq,
        head.hash,
      ]);
      if (moved.affectedRows !== 1) throw new HeadMoved();
    }
    {
      const existing = new Map<string, EffectEntry>();
      const claims = of('claim');
      if (locked && claims.length > 0) {
        const keys = keysIn(claims);
        const rows = (await on.query(`SELECT * FROM ${p}effects WHERE instance_id = ? AND ${keys.sql}`, [instanceId, ...keys.values])).rows;
        for (const row of rows) existing.set(`${row.generation}:${row.key_hash}`, toEffect(String(row.effect_key), row));
      }
      const outcomes = writes.map((write) => (write.kind === 'claim' ? existing.get(`${write.scope.generation}:${keyHash(write.key)}`) : undefined));
      const fresh = claims.filter((write) => !existing.has(`${write.scope.generation}:${keyHash(write.key)}`));
      if (fresh.length > 0) {
        await insertRows(
          on,
          `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at) VALUES`,
          `(?, ?, ?, ?, 'intent', 1, ${NOW})`,
          fresh.map((write) => [instanceId, write.scope.generation, keyHash(write.key), write.key]),
          '',
        );
      }
      const done = writes.filter((write) => write.kind === 'done');
      if (done.length > 0) {
        await insertRows(
          on,
          `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, result, attempts, updated_at) VALUES`,
          `(?, ?, ?, ?, 'done', ?, 1, ${NOW})`,
          done.map((write) => [instanceId, write.scope.generation, keyHash(write.key), write.key, JSON.stringify(write.result)]),
          ` ON DUPLICATE KEY UPDATE status = 'done', result = VALUES(result), updated_at = VALUES(updated_at)`,
        );
      }
      const failed = of('failed');
      if (failed.length > 0) {
        const keys = keysIn(failed);
        await on.query(`DELETE FROM ${p}effects WHERE instance_id = ? AND status = 'intent' AND ${keys.sql}`, [instanceId, ...keys.values]);
      }
      for (const write of of('intent')) {
        await on.query(
          `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at) VALUES (?, ?, ?, ?, 'intent', 1, ${NOW})
           ON DUPLICATE KEY UPDATE status = 'intent', attempts = attempts + 1, updated_at = ${NOW}`,
          [instanceId, write.scope.generation, keyHash(write.key), write.key],
        );
      }
      const events: GenerationEvent[] = [];
      // A claim that found an entry wrote nothing, so it records nothing either.
      writes.forEach((write, i) => {
        if (outcomes[i] === undefined) for (const event of write.events) events.push({ generation: write.scope.generation, event });
      });
      if (events.length > 0) {
        const chained = chainGenerations(instanceId, head, events, this.#db.chainKey(), this.#db.clockOffsetMs);
        // One multi-row insert: ids follow the events' order.
        await insertRows(
          on,
          `INSERT INTO ${p}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed) VALUES`,
          '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          chained.rows.map((row) => eventRow(instanceId, row.generation, row)),
          '',
        );
        if (locked) await on.query(`UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ?`, [chained.head.seq, chained.head.hash, instanceId]);
        this.#heads.set(instanceId, chained.head);
      } else {
        this.#heads.set(instanceId, head);
      }
      return outcomes;
    }
  }
}

/** The fast way found the chain head moved by another writer. */
class HeadMoved extends Error {}

/** One multi-row statement: `head` VALUES `row`, `row`, … `tail`. */
async function insertRows(on: MysqlQueryable, head: string, row: string, values: unknown[][], tail: string): Promise<void> {
  await on.query(`${head} ${values.map(() => row).join(', ')}${tail}`, values.flat());
}
