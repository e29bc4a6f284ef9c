import { createHash } from 'node:crypto';
import { type ChainedGenerations, GENESIS } from '../audit-chain.ts';
import { completions, entryKey, intentsOver, type KeyedWrite, movedIntents, writerOf, writesOf } from '../journal-fence.ts';
import type { Row } from '../rows.ts';
import type { EffectKey, ServerJournal } from '../sql/sql-driver.ts';
import { readEntries } from '../sql/sql-journal.ts';
import type { ChainHead, JournalFence, JournalWrite } from '../store.ts';
import { type MysqlConnection, type MysqlDriver, NOW } from './mysql-driver.ts';
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
 * "Subquery returns more than 1 row": what `orFail` makes the server answer when its condition
 * is false. The one error a statement of the batch can end with by design, on MySQL and MariaDB
 * alike, whatever the session's sql_mode.
 */
const GUESS_FAILED = 1242;

/** Whether a batch failed on one of its guesses (an `orFail` check, a claim's duplicate key), not on an error. */
function isGuess(error: unknown): boolean {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return errno === DUPLICATE_KEY || errno === GUESS_FAILED;
}

/**
 * An expression that is 1 if `condition` holds and fails the statement with GUESS_FAILED if not:
 * a scalar subquery that has one row, or two. The server evaluates it per row, after the row is
 * read (and locked, in a locking read), so the condition may name that row's columns.
 */
function orFail(condition: string): string {
  return `(SELECT 1 UNION ALL SELECT 1 FROM DUAL WHERE NOT (${condition}))`;
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
 * The usual batch goes the fast way, in one round trip on a connection that takes several
 * statements at once (MysqlDriver.batchConnection): the whole transaction, COMMIT included,
 * which the server runs only as far as the guesses it was built on hold. Where the store has no
 * such pool (it was handed one), the same statements go one at a time. The heads it
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
      const claims = writesOf(writes, 'claim');
      const existing = await readEntries(on, p, effectKey, instanceId, [...claims, ...intentsOver(writes)]);
      const moved = movedIntents(writes, existing);
      const outcomes = writes.map((write, i) => (write.kind === 'claim' ? existing.get(entryKey(write.scope.generation, write.key)) : moved.get(i)));
      const fresh = claims.filter((write) => !existing.has(entryKey(write.scope.generation, write.key)));
      const written = writes.filter((_, i) => !moved.has(i));
      for (const statement of effectWrites(p, instanceId, written, fresh)) await on.query(statement.sql, statement.values);
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
 * `from`, and every claim finds no entry (a plain insert). The first statement locks the shard
 * row and then the head (FOR UPDATE, in the join's order: the order a checkpoint's commit and the
 * locked way take them in), waiting for whichever transaction holds them, and checks the first
 * two guesses on the rows it locked (the latest committed, as a locking read sees them); a claim
 * that finds an entry fails the insert of the entries. A guess that did not hold fails its
 * statement (GUESS_FAILED), so no statement after it runs: the transaction is rolled back whole
 * and false returned.
 */
function fastWay(db: MysqlDriver): ServerJournal['fast'] {
  return async (instanceId, writes, fence, from, chained) => {
    const p = db.prefix;
    const statements: Statement[] = [lockGuessed(p, instanceId, fence, from)];
    statements.push(...effectWrites(p, instanceId, writes, writesOf(writes, 'claim')));
    if (chained.rows.length > 0) statements.push(eventInsert(p, instanceId, chained));
    // Unconditional: the head is locked, and the first statement found it at `from`.
    statements.push({ sql: `UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ?`, values: [chained.head.seq, chained.head.hash, instanceId] });
    const connection = await db.batchConnection();
    return connection === undefined ? oneByOne(db, statements) : oneTrip(db, connection, statements);
  };
}

/**
 * One locking read of the shard row (when fenced) and the chain head, in that order, that fails
 * unless the lease's token is the shard's and the head is `from`: a missing row fails it too
 * (the outer join leaves its columns NULL). Both rows are locked exclusively (MariaDB has no
 * per-table lock mode); the shard's lock is only held the few statements of the batch, as a
 * checkpoint's commit holds it.
 */
function lockGuessed(p: string, instanceId: number, fence: JournalFence | undefined, from: ChainHead): Statement {
  const head = 'h.seq <=> ? AND h.hash <=> ?';
  if (fence === undefined) {
    return {
      sql: `SELECT ${orFail(head)} AS held FROM (SELECT 1) AS one LEFT JOIN ${p}chain_heads h ON h.instance_id = ? FOR UPDATE`,
      values: [from.seq, from.hash, instanceId],
    };
  }
  return {
    sql: `SELECT ${orFail(`s.lease_token <=> ? AND ${head}`)} AS held FROM (SELECT 1) AS one LEFT JOIN ${p}shards s ON s.id = ? LEFT JOIN ${p}chain_heads h ON h.instance_id = ? FOR UPDATE`,
    values: [fence.token, from.seq, from.hash, fence.shardId, instanceId],
  };
}

/**
 * `statements` in one transaction, in one round trip on `connection` (of MysqlDriver.batchConnection,
 * whose session is bounded already): START TRANSACTION, the statements, COMMIT. The server runs
 * none after the first that fails: if that is a guess of the batch (GUESS_FAILED, DUPLICATE_KEY),
 * the transaction is rolled back and false returned.
 */
async function oneTrip(db: MysqlDriver, connection: MysqlConnection, statements: readonly Statement[]): Promise<boolean> {
  let usable = false;
  try {
    const sql = ['START TRANSACTION', ...statements.map((statement) => statement.sql), 'COMMIT'];
    try {
      await connection.query(
        sql.join(';\n'),
        statements.flatMap((statement) => statement.values),
      );
    } catch (error) {
      if (!isGuess(error)) throw error;
      await connection.query('ROLLBACK');
      usable = true;
      return false;
    }
    usable = true;
    return true;
  } catch (error) {
    // The session is in an unknown state (a transaction perhaps open): it is closed, which rolls
    // back whatever it had not committed, never handed out again.
    throw db.wrap(error);
  } finally {
    db.giveBackBatch(connection, usable);
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
  const statements: Statement[] = [];
  if (fresh.length > 0) {
    statements.push(
      insertRows(
        `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at, run_id) VALUES`,
        `(?, ?, ?, ?, 'intent', 1, ${NOW}, ?)`,
        fresh.map((write) => [instanceId, write.scope.generation, keyHash(write.key), write.key, writerOf(write)]),
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
  const failed = writesOf(writes, 'failed');
  if (failed.length > 0) {
    const keys = keysIn(failed);
    statements.push({ sql: `DELETE FROM ${p}effects WHERE instance_id = ? AND status = 'intent' AND ${keys.sql}`, values: [instanceId, ...keys.values] });
  }
  const intents = writesOf(writes, 'intent');
  if (intents.length > 0) {
    statements.push(
      insertRows(
        `INSERT INTO ${p}effects (instance_id, generation, key_hash, effect_key, status, attempts, updated_at, run_id) VALUES`,
        `(?, ?, ?, ?, 'intent', 1, ${NOW}, ?)`,
        intents.map((write) => [instanceId, write.scope.generation, keyHash(write.key), write.key, writerOf(write)]),
        ` ON DUPLICATE KEY UPDATE status = 'intent', attempts = attempts + 1, updated_at = VALUES(updated_at), run_id = VALUES(run_id)`,
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
