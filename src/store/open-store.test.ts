import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStoreUrl, redactUrl } from './open-store.ts';

test('store URLs', () => {
  assert.deepEqual(parseStoreUrl('sqlite:.ckpt/ckpt.db'), { kind: 'sqlite', path: '.ckpt/ckpt.db' });
  assert.deepEqual(parseStoreUrl('sqlite:///abs/path.db'), { kind: 'sqlite', path: '/abs/path.db' });
  assert.deepEqual(parseStoreUrl('memory:'), { kind: 'sqlite', path: ':memory:' });
  assert.deepEqual(parseStoreUrl('postgres://u:p@localhost:5432/db'), { kind: 'postgres', url: 'postgres://u:p@localhost:5432/db' });
  assert.deepEqual(parseStoreUrl('mysql://u:p@localhost:3306/db?prefix=x_'), { kind: 'mysql', url: 'mysql://u:p@localhost:3306/db?prefix=x_' });
  for (const bad of ['', 'sqlite:', 'mysql://', 'mysql://host', 'mysql://host/', 'mysql://u:p@/db', 'postgres://', 'ckpt.db'])
    assert.throws(() => parseStoreUrl(bad), { name: 'UsageError' });
});

test('a store URL written twice is refused, not turned into a folder named "sqlite:"', () => {
  assert.throws(() => parseStoreUrl('sqlite:sqlite:/x.db'), { name: 'UsageError', message: /did you mean "sqlite:\/x\.db"/ });
  assert.throws(() => parseStoreUrl('sqlite://sqlite:x.db'), { name: 'UsageError' });
  assert.throws(
    () => parseStoreUrl('sqlite:postgres://u:secret@h/db'),
    (error: Error) => error.name === 'UsageError' && !error.message.includes('secret'),
  );
});

test('passwords never reach messages', () => {
  assert.equal(redactUrl('postgres://user:secret@host/db'), 'postgres://user:***@host/db');
  assert.throws(
    () => parseStoreUrl('postgresql://user:secret@/'),
    (error: Error) => !error.message.includes('secret'),
  );
});
