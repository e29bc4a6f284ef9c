import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dialects } from './dialects.ts';

test("the store's own `?` statements become PostgreSQL's numbered parameters; quoted text keeps its `?`", () => {
  const sql = `SELECT '?' AS q, "a?" FROM t WHERE a = ? AND b IN (?, ?)`;
  assert.equal(dialects.postgres.parameters(sql), `SELECT '?' AS q, "a?" FROM t WHERE a = $1 AND b IN ($2, $3)`);
  assert.equal(dialects.mysql.parameters(sql), sql);
  assert.equal(dialects.sqlite.parameters(sql), sql);
});

test('identifiers are quoted in each dialect, the quote character doubled', () => {
  assert.equal(dialects.postgres.quoteTable('audit.gr"ants'), '"audit"."gr""ants"');
  assert.equal(dialects.mysql.quoteTable('audit.gr`ants'), '`audit`.`gr``ants`');
});

test('upsert (keep, replace or add), share locks, NULL-safe difference and UPDATE with a join, in each dialect', () => {
  assert.equal(dialects.postgres.onConflict(['job'], []), ' ON CONFLICT (job) DO NOTHING');
  assert.equal(dialects.mysql.onConflict(['job'], []), ' ON DUPLICATE KEY UPDATE id = id');
  assert.equal(dialects.mysql.onConflict(['k'], ['v']), ' ON DUPLICATE KEY UPDATE v = VALUES(v)');
  assert.equal(dialects.postgres.onConflictAdd(['k'], '"s".t', 'n'), ' ON CONFLICT (k) DO UPDATE SET n = "s".t.n + excluded.n');
  assert.equal(dialects.mysql.onConflictAdd(['k'], 'ckpt_t', 'n'), ' ON DUPLICATE KEY UPDATE n = n + VALUES(n)');
  assert.equal(dialects.postgres.shareLock, 'FOR SHARE');
  assert.equal(dialects.mysql.shareLock, 'LOCK IN SHARE MODE');
  assert.equal(dialects.postgres.distinct('a', 'b'), 'a IS DISTINCT FROM b');
  assert.equal(dialects.mysql.distinct('a', 'b'), 'NOT (a <=> b)');
  assert.equal(dialects.postgres.updateJoin('r', 's', 's.id = r.s', 'x = 1', 'r.id = ?'), 'UPDATE r SET x = 1 FROM s WHERE s.id = r.s AND r.id = ?');
  assert.equal(dialects.mysql.updateJoin('r', 's', 's.id = r.s', 'x = 1', 'r.id = ?'), 'UPDATE r JOIN s ON s.id = r.s SET x = 1 WHERE r.id = ?');
});
