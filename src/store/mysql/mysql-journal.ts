import { createHash } from 'node:crypto';
import { chainGenerations, GENESIS, type GenerationEvent } from '../audit-chain.ts';
import { completions, entryKey, fastEligible, fenceBatch, isStale, type ShardHolder } from '../journal-fence.ts';
import { type Row, toEffect } from '../rows.ts';
import { limitBatch } from '../sql/guards.ts';
import type { ChainHead, EffectEntry, EffectJournalParts, JournalFence, JournalOutcome, JournalWrite } from '../store.ts';
import { boundIdleWait, FROZEN_SESSION_MS, type MysqlDriver, type MysqlPool, type MysqlQueryable, NOW, RESTORE_WAIT } from './mysql-driver.ts';
import { eventRow } from './mysql-history.ts';

/** Effect keys are found by their sha256: a key can be longer than an index allows. */
export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** A key's entry is found by its sha256. */
export const effectKey = (key: string): { column: string; value: string } => ({ column: 'key_hash', value: keyHash(key) });

type Keyed = Extract<JournalWrite, { key: string }>;

/** One statement of a batch and its values. */
interface Statement {
  sql: string;
  values: unknown[];
}

/** MySQL's duplicate-key error: a claim of the usual way found an entry. */
const DUPLICATE_KEY = 1062;

/**
 * "Subquery returns more than 1 row": what `unless` makes the server answer when its condition
 * is false. The one error a statement of the batch can end with by design, on MySQL and MariaDB
 * alike, whatever the session's sql_mode.
 */
const GUESS_FAILED = 1242;

/** Whether a batch failed on one of its guesses (a check of `unless`, a claim's duplicate key), not on an error. */
function isGuess(error: unknown): boolean {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return errno === DUPLICATE_KEY || errno === GUESS_FAILED;
}

/** A statement that fails with GUESS_FAILED unless `condition` holds: a scalar subquery that has one row, or two. */
function unless(condition: string, values: unknown[]): Statement {
  return { sql: `SELECT (SELECT 1 UNION ALL SELECT 1 FROM DUAL WHERE NOT (${condition})) AS held`, values };
}

/** `(generation, key_hash) IN (…)` for `writes`, and its values. */
function keysIn(writes: readonly Keyed[]): { sql: string; values: unknown[] } {
  return {
    sql: `(generation, key_hash) IN (${writes.map(() => '(?, ?)').join(', ')})`,
    values: writes.flatMap((write) => [write.scope.generation, keyHash(write.key)]),
  };
}

/** One multi-row statement: `head` VALUES `row`, `row`, … `tail`. */
function insertRows(head: string, row: string, values: unknown[][], tail: string): Statement {
  return { sql: `${head} ${values.map(() => row).join(', ')}${tail}`, values: values.flat() };
}

/**
 * The effect journal of a MySQL/MariaDB store, written on pooled connections, never in the job's
 * transaction: an intent is durable before the effect runs, whatever becomes of the chunk. A
 * batch of writes is one short transaction (one commit, one redo-log flush) with multi-row
 * statements, which takes the instance's chain head row lock: every batch on the instance is
 * ordered by it, so a claim never races another worker's claim of the same key, and ids and
 * chain positions ascend together.
 *
 * The usual batch goes the fast way, in two round trips on a connection that takes several
 * statements at once (MysqlDriver.batchPool): the first sends the whole transaction but its
 * COMMIT, the second commits, once the answers show the guesses it was built on held. Where the
 * store has no such pool (it was handed one), the same statements go one at a time.
 */
export class MysqlJournal implements Pick<EffectJournalParts, 'journal'> {
  readonly #db: MysqlDriver;
  /** The chain head each instance had after this process's last batch: the fast way links from it. */
  readonly #heads = new Map<number, ChainHead>();

  constructor(driver: MysqlDriver) {
    this.#db = driver;
  }

  async journal(instanceId: number, writes: readonly JournalWrite[], fence?: JournalFence): Promise<JournalOutcome[]> {
    const cached = this.#heads.get(instanceId);
    const plain = fastEligible(writes);
    if (cached !== undefined && plain) {
      const outcomes = await this.#fast(instanceId, writes, fence, cached);
      if (outcomes !== undefined) return outcomes;
    }
    return this.#db.transaction(async (on) => {
      const p = this.#db.prefix;
      const fenced = await this.#fence(on, instanceId, writes, fence);
      // Effect limits: counted under the counters' row locks, before any claim is written.
      const limited = await limitBatch(on, this.#db, effectKey, instanceId, fenced.writes);
      await on.query(`INSERT INTO ${p}chain_heads (instance_id, seq, hash) VALUES (?, 0, ?) ON DUPLICATE KEY UPDATE seq = seq`, [instanceId, GENESIS]);
      const head = (await on.query(`SELECT seq, hash FROM ${p}chain_heads WHERE instance_id = ? FOR UPDATE`, [instanceId])).rows[0] as Row;
      return fenced.answer(limited.answer(await this.#locked(on, instanceId, limited.writes, { seq: Number(head.seq), hash: String(head.hash) })));
    });
  }

  /**
   * The usual batch, on three guesses: the lease still holds the shard, the chain head is still
   * the one this process last wrote, and every claim finds no entry (a plain insert). The head
   * is moved only if it is that one (which takes its lock). Each guess is checked by the
   * statement after the one it is about, which fails if it did not hold (GUESS_FAILED; a claim
   * that finds an entry fails its insert by itself, DUPLICATE_KEY), so no statement after it
   * runs: the transaction is rolled back whole and undefined returned, and the locked way runs
   * then, and decides.
   */
  async #fast(instanceId: number, writes: readonly JournalWrite[], fence: JournalFence | undefined, head: ChainHead): Promise<JournalOutcome[] | undefined> {
    const p = this.#db.prefix;
    const events = writes.flatMap((write) => write.events.map((event) => ({ generation: write.scope.generation, event })));
    const chained = chainGenerations(instanceId, head, events, this.#db.chainKey(), this.#db.clockOffsetMs);
    const statements: Statement[] = [];
    if (fence !== undefined) {
      // First, before the chain head's lock (the order a checkpoint's commit takes them in): the
      // shard row, share-locked so no claim of the shard commits before this batch does; then
      // the lease's token must be the one it holds.
      statements.push({ sql: `SELECT lease_token FROM ${p}shards WHERE id = ? LOCK IN SHARE MODE`, values: [fence.shardId] });
      statements.push(unless(`EXISTS (SELECT 1 FROM ${p}shards WHERE id = ? AND lease_token = ?)`, [fence.shardId, fence.token]));
    }
    statements.push({
      sql: `UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ? AND seq = ? AND hash = ?`,
      values: [chained.head.seq, chained.head.hash, instanceId, head.seq, head.hash],
    });
    // The row it matched (the driver connects with FOUND_ROWS, so an unchanged head counts).
    statements.push(unless('ROW_COUNT() = 1', []));
    statements.push(
      ...this.#effectWrites(
        instanceId,
        writes,
        writes.filter((write): write is Keyed => write.kind === 'claim'),
      ),
    );
    if (chained.rows.length > 0) statements.push(this.#eventInsert(instanceId, chained.rows));
    const pool = this.#db.batchPool();
    const committed = pool === undefined ? await this.#oneByOne(statements) : await this.#oneTrip(pool, statements);
    if (!committed) return undefined;
    this.#heads.set(instanceId, chained.head);
    return writes.map(() => undefined);
  }

  /**
   * `statements` in one transaction, in one round trip: the session's idle wait bounded (as
   * MysqlDriver.transaction does), START TRANSACTION, the statements, COMMIT, the idle wait put
   * back. The server runs none after the first that fails: if that is a guess of the batch
   * (GUESS_FAILED, DUPLICATE_KEY), the transaction is rolled back and false returned.
   */
  async #oneTrip(pool: Promise<MysqlPool>, statements: readonly Statement[]): Promise<boolean> {
    let connection: Awaited<ReturnType<MysqlPool['getConnection']>>;
    try {
      connection = await (await pool).getConnection();
    } catch (error) {
      throw this.#db.wrap(error);
    }
    let keep = false;
    try {
      const sql = [boundIdleWait(FROZEN_SESSION_MS), 'START TRANSACTION', ...statements.map((statement) => statement.sql), 'COMMIT', RESTORE_WAIT];
      try {
        await connection.query(
          sql.join(';\n'),
          statements.flatMap((statement) => statement.values),
        );
      } catch (error) {
        if (!isGuess(error)) throw error;
        await connection.query(`ROLLBACK;\n${RESTORE_WAIT}`);
        keep = true;
        return false;
      }
      keep = true;
      return true;
    } catch (error) {
      // The session is in an unknown state (a transaction perhaps open, its idle wait bounded):
      // it is closed, which rolls back whatever it had not committed, never handed out again.
      throw this.#db.wrap(error);
    } finally {
      if (keep) connection.release();
      else connection.destroy();
    }
  }

  /** The same as #oneTrip, one statement a round trip, on the store's own pool. */
  async #oneByOne(statements: readonly Statement[]): Promise<boolean> {
    try {
      return await this.#db.transaction(async (on) => {
        for (const statement of statements) await on.query(statement.sql, statement.values);
        return true;
      });
    } catch (error) {
      if (isGuess(error)) return false;
      throw error;
    }
  }

  /**
   * First in the locked way's transaction, before the chain head's lock (the order a
   * checkpoint's commit takes them in): the shard row, share-locked so no claim of the shard
   * commits before this batch does. A stale token makes the batch what fenceBatch says.
   */
  async #fence(
    on: MysqlQueryable,
    instanceId: number,
    writes: readonly JournalWrite[],
    fence: JournalFence | undefined,
  ): Promise<{ writes: readonly JournalWrite[]; answer: (applied: readonly JournalOutcome[]) => JournalOutcome[] }> {
    const same = { writes, answer: (applied: readonly JournalOutcome[]) => [...applied] };
    if (fence === undefined) return same;
    const p = this.#db.prefix;
    const holder = holderOf((await on.query(`SELECT lease_token, run_id FROM ${p}shards WHERE id = ? LOCK IN SHARE MODE`, [fence.shardId])).rows[0]);
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

  /** The batch's statements in the caller's transaction, the chain head locked and `head`: claims look for entries first. */
  async #locked(on: MysqlQueryable, instanceId: number, writes: readonly JournalWrite[], head: ChainHead): Promise<JournalOutcome[]> {
    const p = this.#db.prefix;
    const existing = new Map<string, EffectEntry>();
    const claims = writes.filter((write): write is Keyed => write.kind === 'claim');
    if (claims.length > 0) {
      const keys = keysIn(claims);
      const rows = (await on.query(`SELECT * FROM ${p}effects WHERE instance_id = ? AND ${keys.sql}`, [instanceId, ...keys.values])).rows;
      for (const row of rows) existing.set(`${row.generation}:${row.key_hash}`, toEffect(String(row.effect_key), row));
    }
    const outcomes = writes.map((write) => (write.kind === 'claim' ? existing.get(`${write.scope.generation}:${keyHash(write.key)}`) : undefined));
    const fresh = claims.filter((write) => !existing.has(`${write.scope.generation}:${keyHash(write.key)}`));
    for (const statement of this.#effectWrites(instanceId, writes, fresh)) await on.query(statement.sql, statement.values);
    const events: GenerationEvent[] = [];
    // A claim that found an entry wrote nothing, so it records nothing either.
    writes.forEach((write, i) => {
      if (outcomes[i] === undefined) for (const event of write.events) events.push({ generation: write.scope.generation, event });
    });
    const chained = chainGenerations(instanceId, head, events, this.#db.chainKey(), this.#db.clockOffsetMs);
    if (chained.rows.length > 0) {
      const insert = this.#eventInsert(instanceId, chained.rows);
      await on.query(insert.sql, insert.values);
      await on.query(`UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ?`, [chained.head.seq, chained.head.hash, instanceId]);
    }
    this.#heads.set(instanceId, chained.head);
    return outcomes;
  }

  /** The entries `writes` make, `fresh` being the claims that write one: multi-row statements, none for a kind the batch lacks. */
  #effectWrites(instanceId: number, writes: readonly JournalWrite[], fresh: readonly Keyed[]): Statement[] {
    const p = this.#db.prefix;
    const of = (kind: JournalWrite['kind']) => writes.filter((write): write is Keyed => write.kind === kind);
    const statements: Statement[] = [];
    if (fresh.length > 0) {
      statements.push(
        insertRows(
          `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at) VALUES`,
          `(?, ?, ?, ?, 'intent', 1, ${NOW})`,
          fresh.map((write) => [instanceId, write.scope.generation, keyHash(write.key), write.key]),
          '',
        ),
      );
    }
    const done = writes.filter((write) => write.kind === 'done');
    if (done.length > 0) {
      statements.push(
        insertRows(
          `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, result, attempts, updated_at) VALUES`,
          `(?, ?, ?, ?, 'done', ?, 1, ${NOW})`,
          done.map((write) => [instanceId, write.scope.generation, keyHash(write.key), write.key, JSON.stringify(write.result)]),
          ` ON DUPLICATE KEY UPDATE status = 'done', result = VALUES(result), updated_at = VALUES(updated_at)`,
        ),
      );
    }
    const failed = of('failed');
    if (failed.length > 0) {
      const keys = keysIn(failed);
      statements.push({ sql: `DELETE FROM ${p}effects WHERE instance_id = ? AND status = 'intent' AND ${keys.sql}`, values: [instanceId, ...keys.values] });
    }
    const intents = of('intent');
    if (intents.length > 0) {
      statements.push(
        insertRows(
          `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at) VALUES`,
          `(?, ?, ?, ?, 'intent', 1, ${NOW})`,
          intents.map((write) => [instanceId, write.scope.generation, keyHash(write.key), write.key]),
          ` ON DUPLICATE KEY UPDATE status = 'intent', attempts = attempts + 1, updated_at = VALUES(updated_at)`,
        ),
      );
    }
    return statements;
  }

  /** The chained events in one multi-row insert: ids follow the events' order. */
  #eventInsert(instanceId: number, rows: ReturnType<typeof chainGenerations>['rows']): Statement {
    return insertRows(
      `INSERT INTO ${this.#db.prefix}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed) VALUES`,
      '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      rows.map((row) => eventRow(instanceId, row.generation, row)),
      '',
    );
  }
}

/** The shard row's lease, as a batch reads it (undefined: the row is gone). */
function holderOf(row: Row | undefined): ShardHolder | undefined {
  return row === undefined ? undefined : { token: Number(row.lease_token), runId: row.run_id === null ? null : Number(row.run_id) };
}
