import { setTimeout as sleep } from 'node:timers/promises';
import { DriftError, UsageError } from '../../errors.ts';
import { isSecret, type Secret } from '../../secret.ts';
import { dialects } from '../../store/sql/dialects.ts';
import { paged } from '../cursor.ts';
import type { Lag, Source, SourceItem } from '../source.ts';
import { describeServer, importPeer } from './optional-peer.ts';
import { compareLsn, type Lsn, lsnToBigInt, type Message, PgoutputDecoder } from './pgoutput.ts';

export type { Lsn } from './pgoutput.ts';

/**
 * One row change of a table in the publication, in commit order; or, with `idleBytes`, an `idle`
 * mark: no row, only that the slot holds nothing for the publication up to `lsn` (`table` empty,
 * `xid` 0, `time` when it was seen). A job passes over it; its checkpoint lets the slot move there.
 */
export interface PgChange {
  /** `schema.table`. */
  table: string;
  op: 'insert' | 'update' | 'delete' | 'truncate' | 'idle';
  /** The row after an insert or update: text values as PostgreSQL prints them, null for NULL; a TOASTed value an update left unchanged is absent. */
  new?: Record<string, string | null>;
  /** Before an update or delete: the replica identity's columns (the primary key by default, the whole row with REPLICA IDENTITY FULL); on an update only when they changed, or with FULL. */
  old?: Record<string, string | null>;
  /** Where the change's transaction committed: the end of its commit record. */
  lsn: Lsn;
  xid: number;
  /** When the transaction committed, ISO 8601. */
  time: string;
  /** This change's place in its transaction, 1 to `of`. */
  seq: number;
  of: number;
}

/**
 * Where a shard is in the slot's changes. The last change of a transaction is at `{ lsn }`, the end
 * of its commit record: everything up to there is done. A change inside a transaction is at
 * `{ lsn, seq }`: `lsn` where its commit record starts (nothing of this transaction is confirmed to
 * the slot by it), `seq` how many of the transaction's changes are done.
 */
export interface PgChangePosition {
  lsn: Lsn;
  seq?: number;
}

export interface PgChangesOptions {
  /** A `postgres://` URL of the database the slot is in (a role with REPLICATION, or a superuser); may be `secret(...)`. */
  connection: string | Secret<string>;
  /** A logical replication slot, created with pgoutput on first use: lower-case letters, digits, `_`. */
  slot: string;
  /** The publication (or several) whose tables' changes are read: `CREATE PUBLICATION … FOR TABLE …`. */
  publication: string | string[];
  /** WAL messages asked for per peek; default 1000. A transaction always comes whole. */
  count?: number;
  /** Following, the longest wait between two peeks of a quiet slot; default 1000 ms. */
  pollMs?: number;
  /**
   * Following, while the publication's tables are idle and other tables write: once this many bytes
   * of WAL hold nothing for the publication, hand out an `idle` record at the WAL's position, so the
   * next checkpoint moves the slot there and the server may recycle that WAL. Off by default (the
   * job must pass over `op: 'idle'`): without it an idle publication's slot keeps all that WAL.
   */
  idleBytes?: number;
}

// The slice of `pg` used here.
interface PgClient {
  connect(): Promise<unknown>;
  query<T>(text: string, values?: unknown[]): Promise<{ rows: T[] }>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}
type PgModule = { default: { Client: new (config: { connectionString: string; application_name?: string }) => PgClient } };

/** How many changes `behind` counts at most (WAL messages peeked). */
const LAG_SCAN = 10_000;
/** How long a peek or an advance waits for a slot another session holds (a killed worker's backend finishing its statement). */
const SLOT_BUSY_MS = 30_000;

/**
 * The row changes of the publication's tables through a logical replication slot and pgoutput,
 * PostgreSQL's built-in output plugin, read with `pg_logical_slot_peek_binary_changes`: a peek
 * leaves the slot where it is. The position (an LSN, see `PgChangePosition`) is committed with the
 * checkpoint, and only then is the slot moved (`pg_replication_slot_advance`, `committed`): a crash
 * at any moment finds the slot at or before its last checkpoint, and the read resumes there,
 * skipping what the checkpoint covers. Transactions come whole, in commit order; a checkpoint inside
 * one records how many of its changes are done. A read ends at the WAL's flushed end as of its start;
 * following, it polls (backing off to `pollMs`) until stopped.
 */
export function pgChanges(options: PgChangesOptions): Source<PgChange, PgChangePosition> {
  const { slot } = options;
  if (!/^[a-z0-9_]{1,63}$/.test(slot)) throw new TypeError(`pgChanges: slot must be 1–63 lower-case letters, digits or _ (got ${JSON.stringify(slot)})`);
  const publications = [options.publication].flat();
  if (publications.length === 0 || publications.some((name) => name === '')) throw new TypeError('pgChanges: name a publication');
  // pgoutput splits the list as SQL identifiers: quoted, each keeps its case and characters.
  const publicationNames = publications.map((name) => dialects.postgres.quote(name)).join(',');
  const count = options.count ?? 1000;
  if (!Number.isSafeInteger(count) || count < 1) throw new TypeError(`pgChanges: count must be a whole number ≥ 1 (got ${count})`);
  const pollMs = options.pollMs ?? 1000;
  if (!Number.isSafeInteger(pollMs) || pollMs < 1) throw new TypeError(`pgChanges: pollMs must be a whole number ≥ 1 (got ${pollMs})`);
  const idleBytes = options.idleBytes;
  if (idleBytes !== undefined && (!Number.isSafeInteger(idleBytes) || idleBytes < 1)) {
    throw new TypeError(`pgChanges: idleBytes must be a whole number ≥ 1 (got ${idleBytes})`);
  }
  const where = () => describeServer(isSecret(options.connection) ? options.connection.reveal() : options.connection);

  /** The read's connection while it is open: `committed` and `behind` queue behind its peeks there (the slot takes one session at a time). */
  let live: PgClient | undefined;

  const connect = async (): Promise<PgClient> => {
    const pg = await importPeer<PgModule>(['p', 'g'].join(''), 'pgChanges needs the pg package: npm install pg');
    const url = isSecret(options.connection) ? options.connection.reveal() : options.connection;
    const client = new pg.default.Client({ connectionString: url, application_name: 'checkpointed pgChanges' });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      throw new Error(`pgChanges: cannot connect to ${where()}: ${(error as Error).message}`, { cause: error });
    }
    return client;
  };

  const withClient = async <T>(work: (client: PgClient) => Promise<T>): Promise<T> => {
    if (live !== undefined) return work(live);
    const client = await connect();
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  /** A statement on the slot: waits while another session holds the slot, explains what the user must set up. */
  const onSlot = async <T>(client: PgClient, text: string, values: unknown[], signal?: AbortSignal): Promise<T[]> => {
    const deadline = Date.now() + SLOT_BUSY_MS;
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      try {
        return (await client.query<T>(text, values)).rows;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === '55006' && Date.now() < deadline && signal?.aborted !== true) {
          await sleep(wait);
          continue;
        }
        throw explain(error, { slot, publications, where: where() });
      }
    }
  };

  const peek = (client: PgClient, upto: Lsn | null, limit: number, signal?: AbortSignal) =>
    onSlot<{ data: Uint8Array }>(
      client,
      "SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, $3, 'proto_version', '1', 'publication_names', $4)",
      [slot, upto, limit, publicationNames],
      signal,
    );

  return {
    ...paged<PgChange, PgChangePosition>(async function* (after, { signal, follow }) {
      const client = await connect();
      live = client;
      try {
        const confirmed = await prepareSlot(client, slot, after, where());
        await checkPublications(client, publications, where());
        const head = follow ? null : ((await client.query<{ lsn: Lsn }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0]?.lsn ?? null);
        const decoder = new PgoutputDecoder();
        let last = after;
        let limit = count;
        let quiet = 0;
        // The WAL's insert position at the previous peek: a record boundary, so no commit record
        // straddles it. Once the WAL is flushed past it, a peek to the flushed end has decoded every
        // transaction committed before it: none of ours after `last` makes it an idle mark.
        let candidate: Lsn | undefined;
        let flushed: Lsn | undefined;
        let inserted: Lsn | undefined;
        while (!signal.aborted) {
          if (follow && idleBytes !== undefined) {
            const [wal] = (
              await client.query<{ inserted: Lsn; flushed: Lsn }>(
                'SELECT pg_current_wal_insert_lsn()::text AS inserted, pg_current_wal_flush_lsn()::text AS flushed',
              )
            ).rows;
            flushed = wal?.flushed;
            inserted = wal?.inserted;
          }
          const rows = await peek(client, head, limit, signal);
          // The slot stands at the last checkpoint, so a peek starts there: what this read already
          // handed out since comes again and is passed over.
          const fresh = recordsOf(rows, decoder).filter((item) => last === undefined || comparePositions(item.position, last) > 0);
          const atEnd = rows.length < limit;
          // Each peek decodes again from the slot's confirmed point: the window grows by doubling,
          // so the changes read between two checkpoints are decoded about twice, not once a page.
          limit = Math.max(rows.length + count, 2 * rows.length);
          if (fresh.length > 0) {
            last = (fresh.at(-1) as SourceItem<PgChange, PgChangePosition>).position;
            quiet = 0;
            yield fresh;
          }
          if (!atEnd) continue;
          if (!follow) return;
          if (fresh.length === 0 && idleBytes !== undefined && candidate !== undefined && flushed !== undefined && compareLsn(flushed, candidate) >= 0) {
            const from = last?.lsn ?? confirmed;
            if (from !== null && lsnToBigInt(candidate) - lsnToBigInt(from) >= BigInt(idleBytes)) {
              last = { lsn: candidate };
              const record: PgChange = { table: '', op: 'idle', lsn: candidate, xid: 0, time: new Date().toISOString(), seq: 1, of: 1 };
              yield [{ position: last, record }];
            }
          }
          candidate = inserted;
          if (fresh.length === 0) await sleep(Math.min(pollMs, 25 * 2 ** quiet++), undefined, { signal }).catch(() => undefined);
        }
      } finally {
        live = undefined;
        await client.end().catch(() => undefined);
      }
    }),

    /** The server (its system identifier), the database and the slot. A slot dropped and created again is caught by the read (its confirmed LSN past the checkpoint). */
    async fingerprint() {
      return withClient(async (client) => {
        const [row] = (
          await client.query<{ system: string | null; database: string }>(
            'SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system, current_database() AS database',
          )
        ).rows;
        return `pgchanges:${row?.system ?? '?'}:${row?.database}:${slot}`;
      });
    },

    /** Changes after `position` still in the slot (counted over at most 10,000 WAL messages), and the time since the first of them committed. */
    async behind(position) {
      return withClient(async (client) => {
        const rows = await onSlot<{ data: Uint8Array }>(
          client,
          "SELECT substr(data, 1, 26) AS data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)",
          [slot, LAG_SCAN, publicationNames],
        );
        return lagOf(rows, position);
      });
    },

    /** Moves the slot to the checkpoint's position (never back, never past it): the server may then recycle the WAL before it. */
    async committed(position) {
      await withClient((client) =>
        onSlot(
          client,
          'SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn < $2::pg_lsn',
          [slot, position.lsn],
        ),
      );
    },
  };
}

export function comparePositions(a: PgChangePosition, b: PgChangePosition): number {
  return compareLsn(a.lsn, b.lsn) || (a.seq ?? 0) - (b.seq ?? 0);
}

/** The slot exists (created with pgoutput on first use) and has not moved past the checkpoint. */
async function prepareSlot(client: PgClient, slot: string, after: PgChangePosition | undefined, where: string): Promise<Lsn | null> {
  type SlotRow = { plugin: string | null; confirmed: Lsn | null; here: boolean };
  const find = async () =>
    (
      await client.query<SlotRow>(
        'SELECT plugin, confirmed_flush_lsn::text AS confirmed, database = current_database() AS here FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      )
    ).rows[0];
  let found = await find();
  if (found === undefined) {
    try {
      await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    } catch (error) {
      // 42710: another worker created it meanwhile.
      if ((error as { code?: string }).code !== '42710') throw explain(error, { slot, publications: [], where });
    }
    found = await find();
  }
  if (found === undefined) throw new Error(`pgChanges: the slot ${slot} disappeared as it was created`);
  if (found.plugin !== 'pgoutput' || !found.here) {
    throw new UsageError(
      `pgChanges: the replication slot ${slot} on ${where} is not a pgoutput slot of this database (plugin ${found.plugin ?? 'none: a physical slot'}): name another slot`,
    );
  }
  if (after !== undefined && found.confirmed !== null && compareLsn(found.confirmed, after.lsn) > 0) {
    throw new DriftError(
      `pgChanges: the replication slot ${slot} was confirmed up to ${found.confirmed}, past this shard's checkpoint at ${after.lsn}: the changes between them are gone from it (the slot was dropped and created again, or another consumer moved it); run again with --on-drift restart to start from the slot's position, or --rerun`,
      ['slot'],
    );
  }
  return found.confirmed;
}

/** pgoutput looks its publications up only when a change comes: a missing one is said before. */
async function checkPublications(client: PgClient, publications: string[], where: string): Promise<void> {
  const { rows } = await client.query<{ pubname: string }>('SELECT pubname FROM pg_publication WHERE pubname = ANY($1)', [publications]);
  const missing = publications.filter((name) => !rows.some((row) => row.pubname === name));
  if (missing.length > 0) {
    throw new UsageError(
      `pgChanges: there is no publication ${missing.join(', ')} in the database at ${where}: CREATE PUBLICATION ${missing[0]} FOR TABLE … (the tables whose changes to read)`,
    );
  }
}

/** The records of the whole transactions among the peeked messages (a peek ends on a commit). */
function recordsOf(rows: readonly { data: Uint8Array }[], decoder: PgoutputDecoder): SourceItem<PgChange, PgChangePosition>[] {
  const items: SourceItem<PgChange, PgChangePosition>[] = [];
  let begin: Extract<Message, { kind: 'begin' }> | undefined;
  let changes: Message[] = [];
  for (const { data } of rows) {
    const message = decoder.decode(data);
    if (message.kind === 'begin') {
      begin = message;
      changes = [];
    } else if (message.kind === 'commit') {
      if (begin === undefined) continue;
      const base = { lsn: message.endLsn, xid: begin.xid, time: message.time.toISOString() };
      const records = changes.flatMap((change): Omit<PgChange, 'lsn' | 'xid' | 'time' | 'seq' | 'of'>[] => {
        switch (change.kind) {
          case 'insert':
            return [{ table: change.relation.table, op: 'insert', new: change.new }];
          case 'update':
            return [{ table: change.relation.table, op: 'update', new: change.new, ...(change.old === undefined ? {} : { old: change.old }) }];
          case 'delete':
            return [{ table: change.relation.table, op: 'delete', old: change.old }];
          case 'truncate':
            return change.relations.map((relation) => ({ table: relation.table, op: 'truncate' }));
          default:
            return [];
        }
      });
      records.forEach((record, index) => {
        const seq = index + 1;
        const position = seq < records.length ? { lsn: message.commitLsn, seq } : { lsn: message.endLsn };
        items.push({ position, record: { ...record, ...base, seq, of: records.length } });
      });
      begin = undefined;
    } else if (begin !== undefined && message.kind !== 'relation' && message.kind !== 'other') {
      changes.push(message);
    }
  }
  return items;
}

/** Counts the changes after `position` from the first 26 bytes of each message (enough for Begin and Commit). */
function lagOf(rows: readonly { data: Uint8Array }[], position: PgChangePosition | undefined): Lag {
  const decoder = new PgoutputDecoder();
  let records = 0;
  let oldest: Date | undefined;
  let begin: Extract<Message, { kind: 'begin' }> | undefined;
  let changes = 0;
  for (const { data } of rows) {
    const tag = String.fromCharCode(data[0] ?? 0);
    if (tag === 'B' || tag === 'C') {
      const message = decoder.decode(data);
      if (message.kind === 'begin') {
        begin = message;
        changes = 0;
      } else if (message.kind === 'commit' && begin !== undefined) {
        let after = 0;
        for (let seq = 1; seq <= changes; seq++) {
          const at = seq < changes ? { lsn: message.commitLsn, seq } : { lsn: message.endLsn };
          if (position === undefined || comparePositions(at, position) > 0) after++;
        }
        if (after > 0) oldest ??= begin.time;
        records += after;
        begin = undefined;
      }
    } else if (tag === 'I' || tag === 'U' || tag === 'D') changes++;
    else if (tag === 'T' && data.length >= 5) changes += new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
  }
  return { records, ms: oldest === undefined ? 0 : Math.max(0, Date.now() - oldest.getTime()) };
}

/** A server error a user must act on, said in one line. */
function explain(error: unknown, context: { slot: string; publications: string[]; where: string }): Error {
  const { code, message } = error as { code?: string; message?: string };
  if (code === '55000' && /wal_level/.test(message ?? '')) {
    return new UsageError(
      `pgChanges: ${context.where} has wal_level below logical: set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart the server`,
      { cause: error },
    );
  }
  if (code === '42501') {
    return new UsageError(`pgChanges: the user may not use replication slots on ${context.where}: ALTER ROLE … WITH REPLICATION (or connect as a superuser)`, {
      cause: error,
    });
  }
  if (code === '42704' && /publication/.test(message ?? '')) {
    return new UsageError(
      `pgChanges: ${message} on ${context.where}: CREATE PUBLICATION ${context.publications[0] ?? '…'} FOR TABLE … (the tables whose changes to read)`,
      { cause: error },
    );
  }
  if (code === '42704' && /replication slot/.test(message ?? '')) {
    return new DriftError(`pgChanges: the replication slot ${context.slot} was dropped on ${context.where} while in use`, ['slot'], { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}
