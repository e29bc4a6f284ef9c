import { StoreError } from '../../errors.ts';
import { sha256 } from '../../json.ts';
import { GENESIS } from '../audit-chain.ts';
import { completions, entryKey, intentsOver, type KeyedWrite, movedIntents, writerOf, writesOf } from '../journal-fence.ts';
import type { Row } from '../rows.ts';
import { errorCode } from '../sql/dialect.ts';
import type { EffectKey, ServerJournal, SqlQueryable } from '../sql/sql-driver.ts';
import { readEntries } from '../sql/sql-journal.ts';
import type { ChainHead, JournalOutcome, JournalWrite } from '../store.ts';
import { postgresDialect } from './postgres-dialect.ts';
import { NOW, type PgResult, type PostgresDriver } from './postgres-driver.ts';
import { eventColumns } from './postgres-history.ts';

/** A key's entry is found by the key itself. */
export const effectKey: EffectKey = (key) => ({ column: 'key', value: key });

/** What the fast way fails with when a claim finds an entry: its plain insert's unique_violation. */
const UNIQUE_VIOLATION = '23505';

/** A `pg.Pool` also runs named (prepared) statements: parsed and planned once per connection. */
interface PgNamedQueryable {
  query(config: { name: string; text: string; values: unknown[] }): Promise<PgResult>;
}

/**
 * PostgreSQL's ways of writing a journal batch (the flow around them, fence, limits and chain, is
 * sql/sql-journal.ts): data-modifying CTEs over `unnest` of arrays, so a batch's entries are one
 * statement whatever its size; the fast way is one autocommit statement in all. The heads it links
 * from are the driver's, shared with appendChained's fast path.
 */
export function postgresJournal(db: PostgresDriver): ServerJournal {
  /** The fast way's statement names, by text (one per schema and fenced or not). */
  const names = new Map<string, string>();
  return {
    heads: db.chainHeads,
    fast: fastWay(db, names),
    writeEntries: (on, instanceId, writes) => writeEntries(db, on, instanceId, writes),
    appendEvents: async (on, instanceId, chained) => {
      const s = db.prefix;
      await on.query(
        `WITH added AS (${insertEvents(s, 2, 'true')})
         UPDATE ${s}chain_heads SET seq = $12, hash = $13 WHERE instance_id = $1`,
        [instanceId, chained.rows.map((row) => row.generation), ...eventColumns(chained.rows), chained.head.seq, chained.head.hash],
      );
    },
  };
}

/**
 * The usual batch in one autocommit statement (one round trip): it assumes every claim finds no
 * entry and the chain head is still `from`, and moves the head only if it was still there. Its
 * claims are plain inserts: one that finds an entry fails the statement (unique_violation) and
 * nothing of it stays; if the head moved, nothing is written. False then. (They were inserts
 * that did nothing on a conflict, counted after, and a division by zero failed the statement
 * when the count fell short: a speculative insertion and its confirmation record per claim, which
 * cost the server ~10–25 % of the statement's execution, measured with bench/journal-split.ts.)
 */
function fastWay(db: PostgresDriver, names: Map<string, string>): ServerJournal['fast'] {
  return async (instanceId, writes, fence, from, chained) => {
    const s = db.prefix;
    const gate = 'EXISTS (SELECT 1 FROM head)';
    // A fenced batch moves the head (so writes anything) only while its token holds the shard,
    // the row share-locked so that no claim commits between this check and the batch's commit.
    const fenced = fence === undefined ? '' : ` AND EXISTS (SELECT 1 FROM ${s}shards WHERE id = $24 AND lease_token = $25 FOR SHARE)`;
    let answer: Row[];
    try {
      answer = await prepared(
        db,
        names,
        `WITH head AS (
           UPDATE ${s}chain_heads SET seq = $10, hash = $11 WHERE instance_id = $1 AND seq = $12 AND hash = $13${fenced} RETURNING 1),
         ${entryWrites(s, gate, undefined)},
         added AS (${insertEvents(s, 14, gate)} RETURNING 1)
         SELECT (SELECT count(*) FROM head) AS moved`,
        [
          instanceId,
          ...entryArrays(writes),
          chained.head.seq,
          chained.head.hash,
          from.seq,
          from.hash,
          chained.rows.map((row) => row.generation),
          ...eventColumns(chained.rows),
          ...(fence === undefined ? [] : [fence.shardId, fence.token]),
        ],
      );
    } catch (error) {
      if (errorCode(error) === UNIQUE_VIOLATION) return false;
      throw error;
    }
    return Number(answer[0]?.moved) === 1;
  };
}

/**
 * One statement, prepared once per pooled connection: the fast way runs every batch, and its
 * planning (five data-modifying CTEs over unnest) cost about as much as its execution.
 */
async function prepared(db: PostgresDriver, names: Map<string, string>, text: string, values: unknown[]): Promise<Row[]> {
  let name = names.get(text);
  if (name === undefined) {
    name = `ckpt_journal_${sha256(text).slice(0, 16)}`;
    names.set(text, name);
  }
  try {
    return (await ((await db.pool()) as unknown as PgNamedQueryable).query({ name, text, values })).rows;
  } catch (error) {
    throw db.wrap(error);
  }
}

/**
 * The locked way's entries: claims, completions and forgotten intents in one statement that also
 * takes the chain head's row lock (creating the head if new); then the entries of the claims that
 * found one, and each intent written again (its attempts counted).
 */
async function writeEntries(
  db: PostgresDriver,
  on: SqlQueryable,
  instanceId: number,
  writes: readonly JournalWrite[],
): Promise<{ outcomes: JournalOutcome[]; head: ChainHead }> {
  const s = db.prefix;
  const found = (
    await on.query(
      `WITH ${entryWrites(s, undefined, 'generation, key')},
         head AS (
           INSERT INTO ${s}chain_heads (instance_id, seq, hash) VALUES ($1, 0, $10)
           ON CONFLICT (instance_id) DO UPDATE SET seq = ${s}chain_heads.seq RETURNING seq, hash)
       SELECT generation, key, NULL::bigint AS seq, NULL AS hash FROM claimed
       UNION ALL SELECT NULL, NULL, seq, hash FROM head`,
      [instanceId, ...entryArrays(writes), GENESIS],
    )
  ).rows;
  const won = new Set(found.filter((row) => row.key !== null).map((row) => entryKey(Number(row.generation), String(row.key))));
  const lost = writesOf(writes, 'claim').filter((write) => !won.has(entryKey(write.scope.generation, write.key)));
  // The head's row lock is held from the first statement on: no other batch writes an entry meanwhile.
  const existing = await readEntries(on, s, effectKey, instanceId, [...lost, ...intentsOver(writes)]);
  const moved = movedIntents(writes, existing);
  for (const write of writes.filter((write, i) => write.kind === 'intent' && !moved.has(i)) as KeyedWrite[]) {
    await on.query(
      `INSERT INTO ${s}effects (instance_id, generation, key, status, attempts, updated_at, run_id) VALUES ($1, $2, $3, 'intent', 1, ${NOW}, $4)
       ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'intent', attempts = ${s}effects.attempts + 1, updated_at = excluded.updated_at, run_id = excluded.run_id`,
      [instanceId, write.scope.generation, write.key, writerOf(write)],
    );
  }
  const outcomes = writes.map((write, i): JournalOutcome => {
    if (moved.has(i)) return moved.get(i);
    if (write.kind !== 'claim' || won.has(entryKey(write.scope.generation, write.key))) return undefined;
    const entry = existing.get(entryKey(write.scope.generation, write.key));
    // Refused by an entry that is gone by now (forgotten by another worker's failure): claim again.
    if (entry === undefined) throw new StoreError(`effect key ${write.key} changed while it was claimed; try again`);
    return entry;
  });
  const head = found.find((row) => row.key === null) as Row;
  return { outcomes, head: { seq: Number(head.seq), hash: String(head.hash) } };
}

/**
 * The CTEs `claimed`, `done` and `failed` that write a batch's entries from $1 (the instance) and
 * $2–$9 (entryArrays), only where `gate` holds. With `claimedReturns`, a claim that finds an entry
 * inserts nothing and `claimed` returns those columns of each row it inserted; without, a claim
 * is a plain insert, which fails the statement if its key has an entry (the fast way's guess).
 *
 * Each reads only the batch's own keys, whatever plan the server picks: the fast way's statement
 * is prepared, and after five runs on a connection the server runs its generic plan, planned
 * without the arrays' contents. `failed` once read `instance_id = $1 AND status = 'intent'` and
 * matched the keys after, and that generic plan read every entry of the instance for every batch,
 * forgotten intents or none: 2.2 ms a batch at 20,000 entries, 3.4 ms for the last of them, against 0.4 ms
 * now. So it runs only when the batch forgets an intent (`cardinality`, a one-time filter) and
 * looks its keys up in the primary key (`= ANY`).
 */
function entryWrites(s: string, gate: string | undefined, claimedReturns: string | undefined): string {
  const where = gate === undefined ? '' : ` WHERE ${gate}`;
  const onConflict = claimedReturns === undefined ? '' : ` ON CONFLICT (instance_id, generation, key) DO NOTHING RETURNING ${claimedReturns}`;
  return `claimed AS (
     INSERT INTO ${s}effects (instance_id, generation, key, status, attempts, updated_at, run_id)
     SELECT $1::bigint, g, k, 'intent', 1, ${NOW}, w FROM unnest($2::int[], $3::text[], $9::bigint[]) AS u(g, k, w)${where}${onConflict}),
   done AS (
     INSERT INTO ${s}effects (instance_id, generation, key, status, result, attempts, updated_at)
     SELECT $1::bigint, g, k, 'done', r, 1, ${NOW} FROM unnest($4::int[], $5::text[], $6::text[]) AS u(g, k, r)${where}
     ON CONFLICT (instance_id, generation, key) DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at
     RETURNING 1),
   failed AS (
     DELETE FROM ${s}effects WHERE cardinality($7::int[]) > 0${gate === undefined ? '' : ` AND ${gate}`}
       AND instance_id = $1 AND generation = ANY ($7::int[]) AND key = ANY ($8::text[]) AND status = 'intent'
       AND (generation, key) IN (SELECT g, k FROM unnest($7::int[], $8::text[]) AS u(g, k)) RETURNING 1)`;
}

/** $2–$9 of entryWrites: the claims' generations and keys, the completions' with their results, the forgotten intents', the claims' writers. */
function entryArrays(writes: readonly JournalWrite[]): unknown[][] {
  const claims = writesOf(writes, 'claim');
  const done = completions(writes);
  const failed = writesOf(writes, 'failed');
  return [
    claims.map((write) => write.scope.generation),
    claims.map((write) => write.key),
    done.map((write) => write.scope.generation),
    done.map((write) => write.key),
    done.map((write) => JSON.stringify(write.result)),
    failed.map((write) => write.scope.generation),
    failed.map((write) => write.key),
    claims.map((write) => writerOf(write)),
  ];
}

/**
 * The events' insert from $1 (the instance) and ten arrays from `$n` on (their generations, then
 * eventColumns), in their order, only where `gate` holds.
 */
function insertEvents(s: string, n: number, gate: string): string {
  const columns = ['int', 'bigint', 'text', 'text', 'bigint', 'text', 'bigint', 'text', 'text', 'boolean'].map(
    (type, i) => `${postgresDialect.placeholder(n + i)}::${type}[]`,
  );
  return `INSERT INTO ${s}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed)
    SELECT $1, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed
    FROM unnest(${columns.join(', ')})
      WITH ORDINALITY AS e(generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed, n)
    WHERE ${gate} ORDER BY n`;
}
