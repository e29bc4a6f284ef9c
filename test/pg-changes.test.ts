// pgChanges against a real PostgreSQL with wal_level = logical (a server of this file's own):
// decoded row changes in commit order, whole transactions, a read that ends at the head, a resume
// from inside a transaction, the slot moved only by `committed` and never past its position, a
// slot moved past the checkpoint refused as drift, idle marks (`idleBytes`) that let the slot move
// while the publication is idle and other tables write, and the server-side mistakes a user can
// make said in one line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DriftError, UsageError } from '../src/errors.ts';
import type { SourceItem } from '../src/source/source.ts';
import { type PgChange, type PgChangePosition, pgChanges } from '../src/source/stream/pg-changes.ts';
import { logicalPostgresPerFile, startLogicalPostgres } from './helpers/logical-postgres.ts';

const pg = logicalPostgresPerFile(2);
const { skip } = pg;

async function readAll(source: ReturnType<typeof pgChanges>, from?: PgChangePosition): Promise<SourceItem<PgChange, PgChangePosition>[]> {
  const items: SourceItem<PgChange, PgChangePosition>[] = [];
  for await (const item of source.read(from, { signal: new AbortController().signal })) items.push(item);
  return items;
}

async function confirmed(slot: string): Promise<string> {
  const { rows } = await pg.db.query('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return rows[0]?.lsn as string;
}

test('row changes of the publication, whole transactions in commit order, decoded', { skip }, async () => {
  await pg.db.query('CREATE TABLE grants (id int PRIMARY KEY, who text, role text); CREATE TABLE other (id int)');
  await pg.db.query('CREATE PUBLICATION grants_pub FOR TABLE grants');
  const source = pgChanges({ connection: pg.server.url, slot: 'grants_slot', publication: 'grants_pub', count: 3 });
  assert.deepEqual(await readAll(source), [], 'a fresh slot: nothing yet');
  await pg.db.query("BEGIN; INSERT INTO grants VALUES (1, 'ann', 'admin'), (2, 'bob', NULL); INSERT INTO other VALUES (1); COMMIT");
  await pg.db.query("UPDATE grants SET role = 'reader' WHERE id = 1");
  await pg.db.query('UPDATE grants SET id = 3 WHERE id = 2');
  await pg.db.query('DELETE FROM grants WHERE id = 1');
  const items = await readAll(source);
  const shape = items.map(({ record }) => ({ op: record.op, table: record.table, new: record.new, old: record.old, seq: record.seq, of: record.of }));
  assert.deepEqual(shape, [
    { op: 'insert', table: 'public.grants', new: { id: '1', who: 'ann', role: 'admin' }, old: undefined, seq: 1, of: 2 },
    { op: 'insert', table: 'public.grants', new: { id: '2', who: 'bob', role: null }, old: undefined, seq: 2, of: 2 },
    { op: 'update', table: 'public.grants', new: { id: '1', who: 'ann', role: 'reader' }, old: undefined, seq: 1, of: 1 },
    { op: 'update', table: 'public.grants', new: { id: '3', who: 'bob', role: null }, old: { id: '2', who: null, role: null }, seq: 1, of: 1 },
    { op: 'delete', table: 'public.grants', new: undefined, old: { id: '1', who: null, role: null }, seq: 1, of: 1 },
  ]);
  const [first, second] = items;
  assert.equal(first?.record.xid, second?.record.xid, 'one transaction, one xid');
  assert.equal(first?.position.seq, 1, 'inside a transaction: its commit start and how many are done');
  assert.equal(second?.position.seq, undefined, 'its last change: the end of its commit record');
  assert.equal(second?.position.lsn, second?.record.lsn);
  assert.ok(items.every((item) => !Number.isNaN(Date.parse(item.record.time))));

  // The read moved nothing: the slot stands where it was created until a checkpoint commits.
  const start = await confirmed('grants_slot');
  assert.equal((await readAll(source)).length, 5, 'read again: the same changes');
  assert.equal(await confirmed('grants_slot'), start);

  // A resume inside the first transaction: its second change and on.
  const resumed = await readAll(source, first?.position);
  assert.deepEqual(
    resumed.map((item) => item.record.new?.id ?? item.record.old?.id),
    ['2', '1', '3', '1'],
  );
  await source.committed?.(first?.position as PgChangePosition);
  assert.equal(await confirmed('grants_slot'), first?.position.lsn, 'confirmed at the commit start: the transaction comes again');
  assert.equal((await readAll(source, first?.position)).length, 4);
  await source.committed?.(items[2]?.position as PgChangePosition);
  assert.equal(await confirmed('grants_slot'), items[2]?.position.lsn);
  await source.committed?.(first?.position as PgChangePosition);
  assert.equal(await confirmed('grants_slot'), items[2]?.position.lsn, 'never moved back');
  assert.deepEqual(
    (await readAll(source, items[2]?.position)).map((item) => item.record.op),
    ['update', 'delete'],
  );

  // A slot confirmed past the shard's checkpoint lost changes it should have delivered: drift.
  await assert.rejects(readAll(source, first?.position), (error: Error) => {
    assert.ok(error instanceof DriftError, String(error));
    assert.match(error.message, /grants_slot was confirmed up to .* past this shard's checkpoint/);
    return true;
  });

  // Lag: changes after the position still in the slot, and since when.
  assert.deepEqual(await source.behind?.(items[4]?.position), { records: 0, ms: 0 });
  const lag = await source.behind?.(items[2]?.position);
  assert.equal(lag?.records, 2);
  assert.ok((lag?.ms ?? -1) >= 0);
  await pg.db.query('SELECT pg_drop_replication_slot($1)', ['grants_slot']);
});

test('a follower waits for changes and stops at once when asked', { skip }, async () => {
  await pg.db.query('CREATE TABLE ticks (n int PRIMARY KEY); CREATE PUBLICATION ticks_pub FOR TABLE ticks');
  const source = pgChanges({ connection: pg.server.url, slot: 'ticks_slot', publication: 'ticks_pub', pollMs: 50 });
  const stop = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const item of source.read(undefined, { signal: stop.signal, follow: true })) {
      seen.push(item.record.new?.n as string);
      if (seen.length === 3) stop.abort();
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(seen, [], 'nothing yet, still waiting');
  await pg.db.query('INSERT INTO ticks VALUES (1)');
  await pg.db.query('INSERT INTO ticks VALUES (2), (3)');
  await reading;
  assert.deepEqual(seen, ['1', '2', '3']);
  await pg.db.query('SELECT pg_drop_replication_slot($1)', ['ticks_slot']);
});

test('mistakes a user can make, each said in one line', { skip }, async () => {
  await assert.rejects(readAll(pgChanges({ connection: pg.server.url, slot: 'nopub_slot', publication: 'missing_pub' })), (error: Error) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(error.message, /there is no publication missing_pub in the database at postgres:\/\/127.0.0.1:\d+: CREATE PUBLICATION missing_pub FOR TABLE/);
    return true;
  });
  await pg.db.query('SELECT pg_drop_replication_slot($1)', ['nopub_slot']);
  await pg.db.query("SELECT pg_create_logical_replication_slot('text_slot', 'test_decoding')");
  await assert.rejects(
    readAll(pgChanges({ connection: pg.server.url, slot: 'text_slot', publication: 'x' })),
    /not a pgoutput slot of this database \(plugin test_decoding\)/,
  );
  await pg.db.query('CREATE ROLE plain LOGIN; CREATE PUBLICATION plain_pub FOR ALL TABLES');
  const plain = new URL(pg.server.url);
  plain.username = 'plain';
  await assert.rejects(readAll(pgChanges({ connection: plain.href, slot: 'plain_slot', publication: 'plain_pub' })), (error: Error) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(error.message, /may not use replication slots .*WITH REPLICATION/);
    return true;
  });
  assert.throws(() => pgChanges({ connection: pg.server.url, slot: 'Bad-Slot', publication: 'p' }), /slot must be 1–63 lower-case letters/);
  assert.throws(() => pgChanges({ connection: pg.server.url, slot: 's', publication: 'p', idleBytes: 0 }), /idleBytes must be a whole number ≥ 1 \(got 0\)/);
});

test('a server without wal_level = logical is named, with what to set', { skip }, async () => {
  // A PostgreSQL left at the default wal_level (replica): creating the slot is refused.
  const replica = await startLogicalPostgres({ walLevel: 'replica' });
  try {
    await assert.rejects(readAll(pgChanges({ connection: replica.url, slot: 's', publication: 'p' })), (error: Error) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, /wal_level below logical: set wal_level = logical in postgresql.conf/);
      return true;
    });
  } finally {
    await replica.stop();
  }
});

test('a follower with idleBytes lets the slot move while its publication is idle and other tables write', { skip, timeout: 120_000 }, async (t) => {
  await pg.db.query('CREATE TABLE quiet (id int PRIMARY KEY); CREATE TABLE busy (id int, pad text); CREATE PUBLICATION quiet_pub FOR TABLE quiet');
  const source = pgChanges({ connection: pg.server.url, slot: 'quiet_slot', publication: 'quiet_pub', pollMs: 50, idleBytes: 256 * 1024 });
  const stop = new AbortController();
  const seen: PgChange[] = [];
  // As the runner does: a checkpoint of each record's position, then `committed`.
  const reading = (async () => {
    for await (const item of source.read(undefined, { signal: stop.signal, follow: true })) {
      seen.push(item.record);
      await source.committed?.(item.position);
    }
  })();
  const retained = async () => {
    const { rows } = await pg.db.query(
      "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS restart, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS confirmed FROM pg_replication_slots WHERE slot_name = 'quiet_slot'",
    );
    return { restart: Number(rows[0]?.restart), confirmed: Number(rows[0]?.confirmed) };
  };
  await new Promise((resolve) => setTimeout(resolve, 300)); // the slot is created
  const MB = 1024 * 1024;
  const start = (await pg.db.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn as string;
  let worst = 0;
  for (let round = 0; round < 30; round++) {
    // About 1.2 MB of WAL a round, none of it for the publication.
    await pg.db.query("INSERT INTO busy SELECT g, repeat('x', 1000) FROM generate_series(1, 1000) g");
    if (round === 15) await pg.db.query('INSERT INTO quiet VALUES (1)');
    await new Promise((resolve) => setTimeout(resolve, 60));
    if (round >= 5) worst = Math.max(worst, (await retained()).confirmed);
  }
  // The slot's restart point moves only to a running-transactions record of the server (every 15 s
  // of activity, and at each checkpoint): one, then more WAL, so an idle mark lands past it.
  await pg.db.query('CHECKPOINT');
  await pg.db.query("INSERT INTO busy SELECT g, repeat('x', 1000) FROM generate_series(1, 1000) g");
  const written = Number((await pg.db.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS n', [start])).rows[0]?.n);
  let end = await retained();
  for (let waited = 0; waited < 10_000 && end.restart >= 4 * MB; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    end = await retained();
  }
  stop.abort();
  await reading;
  t.diagnostic(
    `${(written / MB).toFixed(1)} MB of WAL written; the slot at most ${(worst / MB).toFixed(2)} MB behind while writing, at the end ${(end.restart / MB).toFixed(2)} MB retained`,
  );
  assert.ok(written > 30 * MB, `${written} bytes written`);
  assert.ok(worst < 8 * MB, `the slot's confirmed LSN fell ${worst} bytes behind while the publication was idle`);
  assert.ok(end.restart < 4 * MB, `the slot retains ${end.restart} bytes of WAL after ${written} written`);
  assert.deepEqual(
    seen.filter((change) => change.op !== 'idle').map((change) => [change.op, change.new?.id]),
    [['insert', '1']],
    'the one change of ours, among the idle marks',
  );
  assert.ok(seen.filter((change) => change.op === 'idle').length > 10);
  await pg.db.query('SELECT pg_drop_replication_slot($1)', ['quiet_slot']);
});

test('a column named __proto__ (or constructor) comes through as a field of new and old, not lost', { skip }, async () => {
  await pg.db.query('CREATE TABLE odd (id int PRIMARY KEY, "__proto__" text, "constructor" text); ALTER TABLE odd REPLICA IDENTITY FULL');
  await pg.db.query('CREATE PUBLICATION odd_pub FOR TABLE odd');
  const source = pgChanges({ connection: pg.server.url, slot: 'odd_slot', publication: 'odd_pub' });
  assert.deepEqual(await readAll(source), []);
  await pg.db.query("INSERT INTO odd VALUES (1, 'p', 'c')");
  await pg.db.query('DELETE FROM odd WHERE id = 1');
  const [insert, remove] = await readAll(source);
  assert.equal(JSON.stringify(insert?.record.new), '{"id":"1","__proto__":"p","constructor":"c"}');
  assert.equal(Object.getPrototypeOf(insert?.record.new), Object.prototype);
  assert.equal(JSON.stringify(remove?.record.old), '{"id":"1","__proto__":"p","constructor":"c"}');
});
