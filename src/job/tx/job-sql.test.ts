import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sqlQuery } from './job-sql.ts';

const tag =
  (dialect: string) =>
  (strings: TemplateStringsArray, ...values: unknown[]) =>
    sqlQuery(dialect, strings, values);

test('sql template: $n on PostgreSQL, ? on SQLite and MySQL, values as parameters in order', () => {
  const id = 7;
  const name = "O'Brien; DROP TABLE x";
  assert.deepEqual(tag('postgres')`SELECT * FROM t WHERE id = ${id} AND name = ${name}`, {
    text: 'SELECT * FROM t WHERE id = $1 AND name = $2',
    params: [7, name],
  });
  for (const dialect of ['sqlite', 'mysql']) {
    assert.deepEqual(tag(dialect)`INSERT INTO t VALUES (${id}, ${name})`, { text: 'INSERT INTO t VALUES (?, ?)', params: [7, name] });
  }
  assert.deepEqual(tag('postgres')`SELECT 1`, { text: 'SELECT 1', params: [] });
  assert.deepEqual(tag('postgres')`${1}${2}`, { text: '$1$2', params: [1, 2] });
});
