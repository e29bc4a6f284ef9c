import { createHash } from 'node:crypto';
import { type ChainedGenerations, GENESIS } from '../audit-chain.ts';
import { completions, entryKey, type KeyedWrite } from '../journal-fence.ts';
import type { Row } from '../rows.ts';
import type { EffectKey, ServerJournal } from '../sql/sql-driver.ts';
import { readEntries } from '../sql/sql-journal.ts';
import type { ChainHead, JournalFence, JournalWrite } from '../store.ts';
import { type MysqlBatchConnection, type MysqlDriver, NOW } from './mysql-driver.ts';
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
 * such pool (it was handed one), the same statements go one at a time. Either way it can go
 * ahead (ServerJournal.ahead): while the batch before it is still in flight. The heads it links
 * from are its own: MySQL's appendChained has no fast path to share them with.
 */
export function mysqlJournal(db: MysqlDriver): ServerJournal {
  const fast = fastWay(db);
  return {
    heads: new Map(),
    fast,
    // Sent ahead, a batch is the same one round trip: its locking read waits for the batch
    // before it (fastWay sends in order), so `from` may be the end that one predicts.
    ahead: fast,
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
 * The usual batch, on three guesses: the lease still holds the shard, every claim finds no entry
 * (a plain insert), and the chain head is still `from`. The shard row is share-locked first (the
 * order a checkpoint's commit and the locked way take it in) and the token checked on it; then
 * the entries; then the head is locked (FOR UPDATE: it waits for the transaction that holds it,
 * then sees what that one committed) and checked; then the events (ids after the head's lock,
 * so they ascend with the chain) and the head's move. Only those last hold the head's lock, so a
 * batch sent ahead writes its entries while the one before it finishes. (Entries before the
 * head: a claim of a key that another process's locked way writes at the same moment can
 * deadlock with it; the server rolls one back, a transient error, and that batch is written
 * again.) A guess that did not hold fails its statement (GUESS_FAILED, or the claim's
 * DUPLICATE_KEY), so no statement after it runs: the transaction is rolled back whole and false
 * returned.
 */
function fastWay(db: MysqlDriver): ServerJournal['fast'] {
  const ordered = inSendOrder();
  return (instanceId, writes, fence, from, chained) => {
    const p = db.prefix;
    const statements: Statement[] = [];
    if (fence !== undefined) statements.push(fenced(p, fence));
    statements.push(...effectWrites(p, instanceId, writes, claimsOf(writes)));
    statements.push(linked(p, instanceId, from));
    if (chained.rows.length > 0) statements.push(eventInsert(p, instanceId, chained));
    // Unconditional: the head is locked, and the statement before found it at `from`.
    statements.push({ sql: `UPDATE ${p}chain_heads SET seq = ?, hash = ? WHERE instance_id = ?`, values: [chained.head.seq, chained.head.hash, instanceId] });
    return ordered(instanceId, async (locked) => {
      const connection = await db.batchConnection();
      return connection === undefined ? oneByOne(db, statements, locked) : oneTrip(db, connection, statements, locked);
    });
  };
}

/**
 * The order a process's batches of one instance reach the server in, and are answered in: each
 * is sent only once the one sent before it holds the chain head's lock (its locking read has
 * answered) or has ended, and answered only once that one is. So a batch sent while another is
 * in flight (one linked after that one's predicted end) reaches the server behind it, and its
 * locking read waits for that one's COMMIT and then sees it: it never finds the head the batch
 * before it has not moved yet. Two connections have no order between them; this gives them one,
 * at the cost of the locking read's answer, not of the batch's.
 */
function inSendOrder(): (instanceId: number, send: (locked: () => void) => Promise<boolean>) => Promise<boolean> {
  const last = new Map<number, { locked: Promise<void>; answered: Promise<unknown> }>();
  return async (instanceId, send) => {
    const before = last.get(instanceId);
    let locked = () => {};
    const gate = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const answer = (async () => {
      try {
        await before?.locked;
        return await send(locked);
      } finally {
        locked();
      }
    })();
    const entry = { locked: gate, answered: answer.catch(() => undefined) };
    last.set(instanceId, entry);
    try {
      await before?.answered;
      return await answer;
    } finally {
      if (last.get(instanceId) === entry) last.delete(instanceId);
    }
  };
}

const claimsOf = (writes: readonly JournalWrite[]): KeyedWrite[] => writes.filter((write): write is KeyedWrite => write.kind === 'claim');

/** The shard row share-locked (no claim of the shard commits before this batch), failing unless the lease's token is its. */
function fenced(p: string, fence: JournalFence): Statement {
  return {
    sql: `SELECT ${orFail('s.lease_token <=> ?')} AS fenced FROM (SELECT 1) AS one LEFT JOIN ${p}shards s ON s.id = ? LOCK IN SHARE MODE`,
    values: [fence.token, fence.shardId],
  };
}

/** The chain head locked, failing unless it is `from` (a missing row too: the outer join leaves its columns NULL). */
function linked(p: string, instanceId: number, from: ChainHead): Statement {
  return {
    sql: `SELECT ${orFail('h.seq <=> ? AND h.hash <=> ?')} AS held FROM (SELECT 1) AS one LEFT JOIN ${p}chain_heads h ON h.instance_id = ? FOR UPDATE`,
    values: [from.seq, from.hash, instanceId],
  };
}

/**
 * `statements` in one transaction, in one round trip on `connection` (of MysqlDriver.batchConnection,
 * whose session is bounded already): START TRANSACTION, the statements, COMMIT. The server runs
 * none after the first that fails: if that is a guess of the batch (GUESS_FAILED, DUPLICATE_KEY),
 * the transaction is rolled back and false returned. `locked` is called when the first
 * statement's row arrives (the server sends each statement's answer as it runs).
 */
async function oneTrip(db: MysqlDriver, connection: MysqlBatchConnection, statements: readonly Statement[], locked: () => void): Promise<boolean> {
  let usable = false;
  try {
    const sql = ['START TRANSACTION', ...statements.map((statement) => statement.sql), 'COMMIT'];
    try {
      await streamed(
        connection,
        sql.join(';\n'),
        statements.flatMap((statement) => statement.values),
        locked,
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

/**
 * `sql` on the callback connection under `connection`, streamed: `locked` when the row of the
 * batch's locking read (its `held` column) arrives; settles when the last answer has, or with
 * the error that ended it: a statement's (the query's own error) or the connection's (a lost
 * connection is reported on the connection, not on a streamed query).
 */
function streamed(connection: MysqlBatchConnection, sql: string, values: unknown[], locked: () => void): Promise<void> {
  const core = connection.connection;
  return new Promise((resolve, reject) => {
    let failed: Error | undefined;
    const lost = (error?: Error) => {
      core.removeListener('error', lost);
      core.removeListener('end', lost);
      reject(error ?? new Error('the connection ended during a journal batch'));
    };
    core.once('error', lost);
    core.once('end', lost);
    core
      .query(sql, values)
      .on('result', (row) => {
        if (row !== null && typeof row === 'object' && 'held' in row) locked();
      })
      .on('error', (error) => {
        failed = error;
      })
      .on('end', () => {
        core.removeListener('error', lost);
        core.removeListener('end', lost);
        if (failed === undefined) resolve();
        else reject(failed);
      });
  });
}

/** The same as oneTrip, one statement a round trip, on the store's own pool. */
async function oneByOne(db: MysqlDriver, statements: readonly Statement[], locked: () => void): Promise<boolean> {
  try {
    return await db.transaction(async (on) => {
      for (const statement of statements) {
        const { rows } = await on.query(statement.sql, statement.values);
        if (rows[0]?.held !== undefined) locked();
      }
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
