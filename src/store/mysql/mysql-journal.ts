import { createHash } from 'node:crypto';
import { type ChainedGenerations, GENESIS } from '../audit-chain.ts';
import { completions, entryKey, type KeyedWrite } from '../journal-fence.ts';
import type { Row } from '../rows.ts';
import type { EffectKey, ServerJournal } from '../sql/sql-driver.ts';
import { readEntries } from '../sql/sql-journal.ts';
import type { JournalWrite } from '../store.ts';
import { boundIdleWait, FROZEN_SESSION_MS, type MysqlDriver, type MysqlPool, NOW, RESTORE_WAIT } from './mysql-driver.ts';
import { eventRow } from './mysql-history.ts';

/** Effect keys are found by their sha256: a key can be longer than an index allows. */
export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** A key's entry is found by its sha256. */
export const effectKey: EffectKey = (key) => ({ column: 'key_hash', value: keyHash(key) });

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
function keysIn(writes: readonly KeyedWrite[]): { sql: string; values: unknown[] } {
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
 * MySQL's and MariaDB's ways of writing a journal batch (the flow around them, fence, limits and
 * chain, is sql/sql-journal.ts): multi-row statements, one per kind of write.
 *
 * The usual batch goes the fast way, in two round trips on a connection that takes several
 * statements at once (MysqlDriver.batchPool): the first sends the whole transaction but its
 * COMMIT, the second commits, once the answers show the guesses it was built on held. Where the
 * store has no such pool (it was handed one), the same statements go one at a time. The heads it
 * links from are its own: MySQL's appendChained has no fast path to share them with.
 */
export function mysqlJournal(db: MysqlDriver): ServerJournal {
  return {
    heads: new Map(),
    fast: fastWay(db),
    writeEntries: async (on, instanceId, writes) => {
      const p = db.prefix;
      await on.query(`INSERT INTO ${p}chain_heads (instance_id, seq, hash) VALUES (?, 0, ?) ON DUPLICATE KEY UPDATE seq = seq`, [instanceId, GENESIS]);
      const head = (await on.query(`SELECT seq, hash FROM ${p}chain_heads WHERE instance_id = ? FOR UPDATE`, [instanceId])).rows[0] as Row;
      // Claims look for entries first: the head's lock keeps any other batch from writing one meanwhile.
      const claims = writes.filter((write): write is KeyedWrite => write.kind === 'claim');
      const existing = await readEntries(on, p, effectKey, instanceId, claims);
      const outcomes = writes.map((write) => (write.kind === 'claim' ? existing.get(entryKey(write.scope.generation, write.key)) : undefined));
      const fresh = claims.filter((write) => !existing.has(entryKey(write.scope.generation, write.key)));
      for (const statement of effectWrites(p, instanceId, writes, fresh)) await on.query(statement.sql, statement.values);
      return { outcomes, head: { seq: Number(head.seq), hash: String(head.hash) } };
    },
    appendEvents: async (on, instanceId, chained) => {
      const insert = eventInsert(db.prefix, instanceId, chained);
      await on.query(insert.sql, insert.values);
      await on.query(`UPDATE ${db.prefix}chain_heads SET seq = ?, hash = ? WHERE instance_id = ?`, [chained.head.seq, chained.head.hash, instanceId]);
    },
  };
}

/**
 * The usual batch, on three guesses: the lease still holds the shard, the chain head is still
 * `from`, and every claim finds no entry (a plain insert). The head is moved only if it is that
 * one (which takes its lock). Each guess is checked by the statement after the one it is about,
 * which fails if it did not hold (GUESS_FAILED; a claim that finds an entry fails its insert by
 * itself, DUPLICATE_KEY), so no statement after it runs: the transaction is rolled back whole
 * and false returned.
 */
function fastWay(db: MysqlDriver): ServerJournal['fast'] {
  return async (instanceId, writes, fence, from, chained) => {
    const p = db.prefix;
    const statements: Statement[] = [];
    if (fence !== undefined) {
      // First, before the chain head's lock (the order a checkpoint's commit takes them in): the
      // shard row, share-locked so no claim of the shard commits before this batch does; then
      // the lease's token must be the one it holds.
      statements.push({ sql: `SELECT lease_token FROM ${p}shards WHERE id = ? ${db.dialect.shareLock}`, values: [fence.shardId] });
      statements.push(unless(`EXISTS (SELECT 1 FROM ${p}shards WHERE id = ? AND lease_token = ?)`, [fence.shardId, fence.token]));
    }
    statements.push({
      sql: `UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ? AND seq = ? AND hash = ?`,
      values: [chained.head.seq, chained.head.hash, instanceId, from.seq, from.hash],
    });
    // The row it matched (the driver connects with FOUND_ROWS, so an unchanged head counts).
    statements.push(unless('ROW_COUNT() = 1', []));
    statements.push(
      ...effectWrites(
        p,
        instanceId,
        writes,
        writes.filter((write): write is KeyedWrite => write.kind === 'claim'),
      ),
    );
    if (chained.rows.length > 0) statements.push(eventInsert(p, instanceId, chained));
    const pool = db.batchPool();
    return pool === undefined ? oneByOne(db, statements) : oneTrip(db, pool, statements);
  };
}

/**
 * `statements` in one transaction, in one round trip: the session's idle wait bounded (as
 * MysqlDriver.transaction does), START TRANSACTION, the statements, COMMIT, the idle wait put
 * back. The server runs none after the first that fails: if that is a guess of the batch
 * (GUESS_FAILED, DUPLICATE_KEY), the transaction is rolled back and false returned.
 */
async function oneTrip(db: MysqlDriver, pool: Promise<MysqlPool>, statements: readonly Statement[]): Promise<boolean> {
  let connection: Awaited<ReturnType<MysqlPool['getConnection']>>;
  try {
    connection = await (await pool).getConnection();
  } catch (error) {
    throw db.wrap(error);
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
    throw db.wrap(error);
  } finally {
    if (keep) connection.release();
    else connection.destroy();
  }
}

/** The same as oneTrip, one statement a round trip, on the store's own pool. */
async function oneByOne(db: MysqlDriver, statements: readonly Statement[]): Promise<boolean> {
  try {
    return await db.transaction(async (on) => {
      for (const statement of statements) await on.query(statement.sql, statement.values);
      return true;
    });
  } catch (error) {
    if (isGuess(error)) return false;
    throw error;
  }
}

/** The entries `writes` make, `fresh` being the claims that write one: multi-row statements, none for a kind the batch lacks. */
function effectWrites(p: string, instanceId: number, writes: readonly JournalWrite[], fresh: readonly KeyedWrite[]): Statement[] {
  const of = (kind: JournalWrite['kind']) => writes.filter((write): write is KeyedWrite => write.kind === kind);
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
  const done = completions(writes);
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
function eventInsert(p: string, instanceId: number, chained: ChainedGenerations): Statement {
  return insertRows(
    `INSERT INTO ${p}events (instance_id, generation, run_id, shard, type, at, data, seq, prev_hash, hash, keyed) VALUES`,
    '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    chained.rows.map((row) => eventRow(instanceId, row.generation, row)),
    '',
  );
}
