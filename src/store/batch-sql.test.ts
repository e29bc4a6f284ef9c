import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchStatement, rowsPerStatement } from './batch-sql.ts';

const insert = { kind: 'insert', table: 'audit.grants', columns: ['id', 'who'], key: [] } as const;
const upsert = { kind: 'upsert', table: 'latest', columns: ['k', 'v'], key: ['k'] } as const;

test('multi-row insert in each dialect', () => {
  assert.equal(batchStatement('sqlite', insert, 2), 'INSERT INTO "audit"."grants" ("id", "who") VALUES (?, ?), (?, ?)');
  assert.equal(batchStatement('postgres', insert, 2), 'INSERT INTO "audit"."grants" ("id", "who") VALUES ($1, $2), ($3, $4)');
  assert.equal(batchStatement('mysql', insert, 1), 'INSERT INTO `audit`.`grants` (`id`, `who`) VALUES (?, ?)');
});

test('upsert: ON CONFLICT on SQLite and PostgreSQL, ON DUPLICATE KEY UPDATE on MySQL, nothing to update when every column is the key', () => {
  assert.equal(batchStatement('postgres', upsert, 1), 'INSERT INTO "latest" ("k", "v") VALUES ($1, $2) ON CONFLICT ("k") DO UPDATE SET "v" = excluded."v"');
  assert.equal(batchStatement('mysql', upsert, 1), 'INSERT INTO `latest` (`k`, `v`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)');
  const keyOnly = { ...upsert, columns: ['k'] };
  assert.equal(batchStatement('sqlite', keyOnly, 1), 'INSERT INTO "latest" ("k") VALUES (?) ON CONFLICT ("k") DO NOTHING');
  assert.equal(batchStatement('mysql', keyOnly, 1), 'INSERT INTO `latest` (`k`) VALUES (?) ON DUPLICATE KEY UPDATE `k` = `k`');
});

test('delete by one column or by a row of columns', () => {
  assert.equal(batchStatement('postgres', { kind: 'delete', table: 't', columns: ['id'], key: [] }, 3), 'DELETE FROM "t" WHERE "id" IN ($1, $2, $3)');
  assert.equal(
    batchStatement('sqlite', { kind: 'delete', table: 't', columns: ['a', 'b'], key: [] }, 2),
    'DELETE FROM "t" WHERE ("a", "b") IN ((?, ?), (?, ?))',
  );
});

test('identifiers are quoted, never spliced', () => {
  assert.equal(batchStatement('sqlite', { kind: 'insert', table: 'x"; DROP', columns: ['a"b'], key: [] }, 1), 'INSERT INTO "x""; DROP" ("a""b") VALUES (?)');
});

test('statements stay under the bind-parameter limits', () => {
  assert.equal(rowsPerStatement('sqlite', insert), 500);
  assert.equal(rowsPerStatement('postgres', insert), 1000);
  assert.equal(rowsPerStatement('postgres', { ...insert, columns: Array.from({ length: 100 }, (_, i) => `c${i}`) }), 300);
});
