import { StoreError } from '../../errors.ts';
import { sha256 } from '../../json.ts';
import { chainGenerations, GENESIS, type GenerationEvent } from '../audit-chain.ts';
import { completions, entryKey, fastEligible, fenceBatch, isStale } from '../journal-fence.ts';
import { type Row, toEffect } from '../rows.ts';
import { limitBatch } from '../sql/guards.ts';
import type { ChainHead, EffectEntry, EffectJournalParts, JournalFence, JournalOutcome, JournalWrite } from '../store.ts';
import { NOW, type PgResult, type PostgresDriver } from './postgres-driver.ts';
import { eventColumns } from './postgres-history.ts';

type Keyed = Extract<JournalWrite, { key: string }>;

/** A key's entry is found by the key itself. */
export const effectKey = (key: string): { column: string; value: string } => ({ column: 'key', value: key });

/** The error the fast way raises on purpose when a claim finds an entry. */
const DIVISION_BY_ZERO = '22012';

/** A `pg.Pool` also runs named (prepared) statements: parsed and planned once per connection. */
interface PgNamedQueryable {
  query(config: { name: string; text: string; values: unknown[] }): Promise<PgResult>;
}

/**
 * The effect journal of a PostgreSQL store, written on pooled connections, never in the job's
 * transaction: an intent is durable before the effect runs, whatever becomes of the chunk. A
 * batch of writes is one short transaction (one commit, one WAL flush): one statement for every
 * claim, completion and forgotten intent of the batch, which also takes the chain head's row
 * lock, then one for all its events; the lock orders the appends of every worker on the
 * instance, so ids and chain positions ascend together.
 */
export class PostgresJournal implements Pick<EffectJournalParts, 'journal'> {
  readonly #db: PostgresDriver;
  /** The fast way's statement names, by text (one per schema and fenced or not). */
  readonly #names = new Map<string, string>();

  constructor(driver: PostgresDriver) {
    this.#db = driver;
  }

  async journal(instanceId: number, writes: readonly JournalWrite[], fence?: JournalFence): Promise<JournalOutcome[]> {
    const cached = this.#db.chainHeads.get(instanceId);
    const plain = fastEligible(writes);
    if (cached !== undefined && plain && (await this.#fast(instanceId, writes, cached, fence))) {
      return writes.map(() => undefined);
    }
    return this.#locked(instanceId, writes, fence);
  }

  /**
   * The usual batch in one autocommit statement (one round trip): it assumes every claim finds
   * no entry and the chain head is still the one this process last wrote, links the events from
   * it, and moves the head only if it was still there. If a claim finds an entry, the statement
   * fails on purpose (a division by zero) and nothing of it stays; if the head moved, nothing is
   * written. False then: the locked way decides.
   */
  async #fast(instanceId: number, writes: readonly JournalWrite[], cached: ChainHead, fence: JournalFence | undefined): Promise<boolean> {
    const s = this.#db.prefix;
    const claims = writes.filter((write): write is Keyed => write.kind === 'claim');
    const done = writes.filter((write) => write.kind === 'done');
    const failed = writes.filter((write): write is Keyed => write.kind === 'failed');
    const events = writes.flatMap((write) => write.events.map((event) => ({ generation: write.scope.generation, event })));
    const chained = chainGenerations(instanceId, cached, events, this.#db.chainKey(), this.#db.clockOffsetMs);
    const rows = chained.rows;
    const gate = 'EXISTS (SELECT 1 FROM head)';
    // A fenced batch moves the head (so writes anything) only while its token holds the shard,
    // the row share-locked so that no claim commits between this check and the batch's commit.
    const fenced = fence === undefined ? '' : ` AND EXISTS (SELECT 1 FROM ${s}shards WHERE id = $24 AND lease_token = $25 FOR SHARE)`;
    let answer: Row[];
    try {
      answer = await this.#prepared(
        `WITH head AS (
           UPDATE ${s}chain_heads SET seq = $10, hash = $11 WHERE instance_id = $1 AND seq = $12 AND hash = $13${fenced} RETURNING 1),
         claimed AS (
           INSERT INTO ${s}effects (instance_id, generation, key, status, attempts, updated_at)
           SELECT $1::bigint, g, k, 'intent', 1, ${NOW} FROM unnest($2::int[], $3::text[]) AS u(g, k) WHERE ${gate}
           ON CONFLICT (instance_id, generation, key) DO NOTHING RETURNING 1),
         done AS (
           INSERT INTO ${s}effects (instance_id, generation, key, status, result, attempts, updated_at)
           SELECT $1::bigint, g, k, 'done', r, 1, ${NOW} FROM unnest($4::int[], $5::text[], $6::text[]) AS u(g, k, r) WHERE ${gate}
           ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at
           RETURNING 1),
         failed AS (
           DELETE FROM ${s}effects WHERE instance_id = $1 AND status = 'intent' AND ${gate}
             AND (generation, key) IN (SELECT g, k FROM unnest($7::int[], $8::text[]) AS u(g, k)) RETURNING 1),
         added AS (
           INSERT INTO ${s}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed)
           SELECT $1, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed
           FROM unnest($14::int[], $15::bigint[], $16::text[], $17::text[], $18::bigint[], $19::text[], $20::bigint[], $21::text[], $22::text[], $23::boolean[])
             WITH ORDINALITY AS e(generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed, n)
           WHERE ${gate} ORDER BY n RETURNING 1)
         SELECT (SELECT count(*) FROM head) AS moved, 1 / (CASE WHEN (SELECT count(*) FROM claimed) = $9 THEN 1 ELSE 0 END) AS claimed`,
        [
          instanceId,
          claims.map((write) => write.scope.generation),
          claims.map((write) => write.key),
          done.map((write) => write.scope.generation),
          done.map((write) => write.key),
          done.map((write) => JSON.stringify(write.result)),
          failed.map((write) => write.scope.generation),
          failed.map((write) => write.key),
          claims.length,
          chained.head.seq,
          chained.head.hash,
          cached.seq,
          cached.hash,
          rows.map((row) => row.generation),
          ...eventColumns(rows),
          ...(fence === undefined ? [] : [fence.shardId, fence.token]),
        ],
      );
    } catch (error) {
      if ((error as { code?: unknown }).code === DIVISION_BY_ZERO) return false;
      throw error;
    }
    if (Number(answer[0]?.moved) !== 1) return false;
    this.#db.chainHeads.set(instanceId, chained.head);
    return true;
  }

  /**
   * One statement, prepared once per pooled connection: the fast way runs every batch, and its
   * planning (five data-modifying CTEs over unnest) cost about as much as its execution.
   */
  async #prepared(text: string, values: unknown[]): Promise<Row[]> {
    let name = this.#names.get(text);
    if (name === undefined) {
      name = `ckpt_journal_${sha256(text).slice(0, 16)}`;
      this.#names.set(text, name);
    }
    try {
      return (await ((await this.#db.pool()) as unknown as PgNamedQueryable).query({ name, text, values })).rows;
    } catch (error) {
      throw this.#db.wrap(error);
    }
  }

  /** Any batch, in a short transaction that takes the chain head's row lock: claims may find entries. */
  async #locked(instanceId: number, batch: readonly JournalWrite[], fence: JournalFence | undefined): Promise<JournalOutcome[]> {
    const s = this.#db.prefix;
    const head = await this.#db.transaction(async (client) => {
      // The shard row, share-locked: no claim of the shard commits before this batch does.
      const holderRow =
        fence === undefined
          ? undefined
          : ((await client.query(`SELECT lease_token, run_id FROM ${s}shards WHERE id = $1 FOR SHARE`, [fence.shardId])).rows[0] as Row | undefined);
      const holder =
        holderRow === undefined ? undefined : { token: Number(holderRow.lease_token), runId: holderRow.run_id === null ? null : Number(holderRow.run_id) };
      let writes = batch;
      let answer = (applied: readonly JournalOutcome[]): JournalOutcome[] => [...applied];
      if (isStale(fence, holder)) {
        const done = completions(batch);
        const rows = (
          await client.query(
            `SELECT * FROM ${s}effects WHERE instance_id = $1 AND (generation, key) IN (SELECT g, k FROM unnest($2::int[], $3::text[]) AS u(g, k))`,
            [instanceId, done.map((write) => write.scope.generation), done.map((write) => write.key)],
          )
        ).rows as Row[];
        const entries = new Map(rows.map((row) => [entryKey(Number(row.generation), String(row.key)), toEffect(String(row.key), row)]));
        const fenced = fenceBatch(batch, fence, holder, entries);
        writes = fenced.writes;
        answer = fenced.outcomes;
      }
      // Effect limits: counted under the counters' row locks, before any claim is written.
      const limited = await limitBatch(client, this.#db, effectKey, instanceId, writes);
      writes = limited.writes;
      const fencedAnswer = answer;
      answer = (applied) => fencedAnswer(limited.answer(applied));
      const of = (kind: JournalWrite['kind']) => writes.filter((write): write is Keyed => write.kind === kind);
      const claims = of('claim');
      const done = writes.filter((write) => write.kind === 'done');
      const failed = of('failed');
      const found = (
        await client.query(
          `WITH claimed AS (
             INSERT INTO ${s}effects (instance_id, generation, key, status, attempts, updated_at)
             SELECT $1::bigint, g, k, 'intent', 1, ${NOW} FROM unnest($2::int[], $3::text[]) AS u(g, k)
             ON CONFLICT (instance_id, generation, key) DO NOTHING RETURNING generation, key),
           done AS (
             INSERT INTO ${s}effects (instance_id, generation, key, status, result, attempts, updated_at)
             SELECT $1::bigint, g, k, 'done', r, 1, ${NOW} FROM unnest($4::int[], $5::text[], $6::text[]) AS u(g, k, r)
             ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at
             RETURNING 1),
           failed AS (
             DELETE FROM ${s}effects WHERE instance_id = $1 AND status = 'intent'
               AND (generation, key) IN (SELECT g, k FROM unnest($7::int[], $8::text[]) AS u(g, k)) RETURNING 1),
           head AS (
             INSERT INTO ${s}chain_heads (instance_id, seq, hash) VALUES ($1, 0, $9)
             ON CONFLICT (instance_id) DO UPDATE SET seq = ${s}chain_heads.seq RETURNING seq, hash)
           SELECT generation, key, NULL::bigint AS seq, NULL AS hash FROM claimed
           UNION ALL SELECT NULL, NULL, seq, hash FROM head`,
          [
            instanceId,
            claims.map((write) => write.scope.generation),
            claims.map((write) => write.key),
            done.map((write) => write.scope.generation),
            done.map((write) => write.key),
            done.map((write) => JSON.stringify(write.result)),
            failed.map((write) => write.scope.generation),
            failed.map((write) => write.key),
            GENESIS,
          ],
        )
      ).rows as Row[];
      const won = new Set(found.filter((row) => row.key !== null).map((row) => `${row.generation}:${row.key}`));
      const lost = claims.filter((write) => !won.has(`${write.scope.generation}:${write.key}`));
      const existing = new Map<string, EffectEntry>();
      if (lost.length > 0) {
        const rows = (
          await client.query(
            `SELECT * FROM ${s}effects WHERE instance_id = $1 AND (generation, key) IN (SELECT g, k FROM unnest($2::int[], $3::text[]) AS u(g, k))`,
            [instanceId, lost.map((write) => write.scope.generation), lost.map((write) => write.key)],
          )
        ).rows as Row[];
        for (const row of rows) existing.set(`${row.generation}:${row.key}`, toEffect(String(row.key), row));
      }
      for (const write of of('intent')) {
        await client.query(
          `INSERT INTO ${s}effects (instance_id, generation, key, status, attempts, updated_at) VALUES ($1, $2, $3, 'intent', 1, ${NOW})
           ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'intent', attempts = ${s}effects.attempts + 1, updated_at = excluded.updated_at`,
          [instanceId, write.scope.generation, write.key],
        );
      }
      const outcomes: JournalOutcome[] = [];
      const events: GenerationEvent[] = [];
      for (const write of writes) {
        let outcome: JournalOutcome;
        if (write.kind === 'claim' && !won.has(`${write.scope.generation}:${write.key}`)) {
          outcome = existing.get(`${write.scope.generation}:${write.key}`);
          // Refused by an entry that is gone by now (forgotten by another worker's failure): claim again.
          if (outcome === undefined) throw new StoreError(`effect key ${write.key} changed while it was claimed; try again`);
        }
        outcomes.push(outcome);
        // A claim that found an entry wrote nothing, so it records nothing either.
        if (outcome === undefined) for (const event of write.events) events.push({ generation: write.scope.generation, event });
      }
      const locked = found.find((row) => row.key === null) as Row;
      const chained = chainGenerations(instanceId, { seq: Number(locked.seq), hash: String(locked.hash) }, events, this.#db.chainKey(), this.#db.clockOffsetMs);
      if (events.length > 0) {
        const rows = chained.rows;
        await client.query(
          `WITH added AS (
             INSERT INTO ${s}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed)
             SELECT $1, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed
             FROM unnest($2::int[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::boolean[])
               WITH ORDINALITY AS e(generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed, n)
             ORDER BY n)
           UPDATE ${s}chain_heads SET seq = $12, hash = $13 WHERE instance_id = $1`,
          [instanceId, rows.map((row) => row.generation), ...eventColumns(rows), chained.head.seq, chained.head.hash],
        );
      }
      return { outcomes: answer(outcomes), head: chained.head };
    });
    // The head this process last wrote: appendChained's fast path links from it.
    this.#db.chainHeads.set(instanceId, head.head);
    return head.outcomes;
  }
}
