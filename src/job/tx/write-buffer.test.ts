import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import type { SqlHandle } from '../../store/store.ts';
import { WriteBuffer } from './write-buffer.ts';

/** Rows as plain objects (node:sqlite gives null-prototype ones). */
const plain = (rows: unknown) => (rows as object[]).map((row) => ({ ...row }));

/** A real in-memory SQLite behind the handle, recording each statement sent. */
function recordingSql(): { sql: SqlHandle; sent: { text: string; rows: number }[]; db: DatabaseSync } {
  const db = new DatabaseSync(':memory:');
  db.exec('CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)');
  const sent: { text: string; rows: number }[] = [];
  const sql: SqlHandle = {
    dialect: 'sqlite',
    query: async (text, params = []) => {
      sent.push({ text, rows: params.length / 2 });
      db.prepare(text).run(...(params as string[]));
      return { rows: [], rowCount: 0 };
    },
  };
  return { sql, sent, db };
}

test('the buffer is full as soon as one batch fills a statement (500 rows on SQLite), and empty after a send', async () => {
  const { sql, sent } = recordingSql();
  const buffer = new WriteBuffer('sqlite');
  for (let id = 0; id < 499; id++) buffer.add('insert', 'a', { id, v: `r${id}` });
  assert.equal(buffer.full, false);
  buffer.add('insert', 'a', { id: 499, v: 'r499' });
  assert.equal(buffer.full, true);
  await buffer.flush(sql);
  assert.equal(buffer.full, false);
  assert.deepEqual(
    sent.map((s) => s.rows),
    [500],
  );
});

test('a batch sent earlier starts again in order: tables first seen first, rows of a table in order', async () => {
  const { sql, sent, db } = recordingSql();
  const buffer = new WriteBuffer('sqlite');
  for (let id = 0; id < 500; id++) buffer.add('insert', 'a', { id, v: 'first' });
  await buffer.flush(sql);
  // After the send, b appears before a's next rows: b's batch goes first this time.
  buffer.add('insert', 'b', { id: 1, v: 'b' });
  buffer.add('insert', 'a', { id: 500, v: 'again' });
  buffer.add('insert', 'a', { id: 501, v: 'again' });
  await buffer.flush(sql);
  assert.deepEqual(
    sent.map((s) => [s.text.slice(0, 18), s.rows]),
    [
      ['INSERT INTO "a" ("', 500],
      ['INSERT INTO "b" ("', 1],
      ['INSERT INTO "a" ("', 2],
    ],
  );
  assert.deepEqual(plain(db.prepare('SELECT count(*) AS n FROM a').all()), [{ n: 502 }]);
  assert.deepEqual(plain(db.prepare("SELECT id FROM a WHERE v = 'again' ORDER BY id").all()), [{ id: 500 }, { id: 501 }]);
});

test('an upsert key sent in an earlier statement is written again by the next, with its new values', async () => {
  const { sql, db } = recordingSql();
  const buffer = new WriteBuffer('sqlite');
  buffer.add('upsert', 'a', { id: 1, v: 'one' }, ['id']);
  buffer.add('upsert', 'a', { id: 2, v: 'two' }, ['id']);
  await buffer.flush(sql);
  // The key map of the sent batch is gone: key 2 is a new row of the new batch, not an index into the old one.
  buffer.add('upsert', 'a', { id: 3, v: 'three' }, ['id']);
  buffer.add('upsert', 'a', { id: 2, v: 'two again' }, ['id']);
  buffer.add('upsert', 'a', { id: 2, v: 'two, last' }, ['id']);
  await buffer.flush(sql);
  assert.deepEqual(plain(db.prepare('SELECT id, v FROM a ORDER BY id').all()), [
    { id: 1, v: 'one' },
    { id: 2, v: 'two, last' },
    { id: 3, v: 'three' },
  ]);
});
