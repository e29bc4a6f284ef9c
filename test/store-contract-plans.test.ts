// The Store contract for plans (`ckpt plan` / `ckpt apply`) and the fleet's rate buckets, run
// against every backend (CKPT_TEST_STORES selects them), like test/store-contract.test.ts; and
// a store from before plans (SQLite 7, PostgreSQL 6, MySQL 5) upgraded in place.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { MysqlStore } from '../src/mysql.ts';
import { PostgresStore } from '../src/postgres.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { mysqlMigrations } from '../src/store/mysql/mysql-migrations.ts';
import { postgresMigrations } from '../src/store/postgres/postgres-migrations.ts';
import { sqliteMigrations, sqliteSideMigrations } from '../src/store/sqlite/sqlite-migrations.ts';
import type { NewPlan, Store } from '../src/store.ts';
import { tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';
import { selectedStoreFactories } from './helpers/stores.ts';

function newPlan(instanceId: number, hash: string): NewPlan {
  return {
    instanceId,
    job: 'deprovision',
    params: { day: '1' },
    paramsHash: 'ph',
    generation: 1,
    jobFile: 'jobs/deprovision.ts',
    effects: [{ shard: 'main', kind: 'disable', key: 'disable:a1', scope: 'generation', describe: 'disable a1', target: 'directory' }],
    counts: { disable: 1 },
    records: 1,
    failures: [],
    failed: 0,
    hash,
    approvalsRequired: 2,
  };
}

/** Plans and buckets work on a migrated store. */
async function checkPlansWork(store: Store, name: string): Promise<void> {
  const instance = await store.instance(name, 'ph', { params: {}, version: null });
  const saved = await store.savePlan(newPlan(instance.id, 'f'.repeat(64)));
  assert.equal(saved.id, 'f'.repeat(16));
  assert.deepEqual((await store.plan(saved.id))?.effects, saved.effects);
  assert.equal((await store.takeTokens(`${name}-bucket`, 10, 3, 5)).granted, 3);
}

for (const factory of selectedStoreFactories()) {
  describe(`Store contract, plans and rate buckets: ${factory.name}`, { skip: await factory.skip?.() }, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ store, dispose } = await factory.create());
    });
    after(async () => {
      await dispose();
    });

    test('a plan is stored whole, found by its id, and the same plan stored twice is one', async () => {
      const instance = await store.instance('plans-1', 'ph', { params: {}, version: null });
      const plan = newPlan(instance.id, 'a'.repeat(64));
      const saved = await store.savePlan(plan);
      assert.equal(saved.id, 'a'.repeat(16));
      assert.deepEqual(saved.approvals, []);
      assert.ok(saved.createdAt > 0);
      const { id: _id, approvals: _approvals, createdAt: _createdAt, ...rest } = (await store.plan(saved.id)) ?? assert.fail('plan not found');
      assert.deepEqual(rest, plan);
      const again = await store.savePlan(plan);
      assert.equal(again.id, saved.id);
      assert.equal(again.createdAt, saved.createdAt, 'the first one is kept');
      assert.equal(await store.plan('0'.repeat(16)), undefined);
    });

    test('approvals: one per approver name (a second by the same name replaces the first), kept across saves', async () => {
      const instance = await store.instance('plans-2', 'ph', { params: {}, version: null });
      const saved = await store.savePlan(newPlan(instance.id, 'b'.repeat(64)));
      await store.approvePlan(saved.id, { by: 'ana', osUser: 'u1', reason: 'reviewed', at: 1 });
      await store.approvePlan(saved.id, { by: 'ana', osUser: 'u1', reason: 'again', at: 2 });
      const both = await store.approvePlan(saved.id, { by: 'ben', osUser: 'u2', reason: null, at: 3 });
      assert.deepEqual(
        both?.approvals.map((approval) => [approval.by, approval.reason]),
        [
          ['ana', 'again'],
          ['ben', null],
        ],
      );
      assert.equal((await store.savePlan(newPlan(instance.id, 'b'.repeat(64)))).approvals.length, 2);
      assert.equal(await store.approvePlan('1'.repeat(16), { by: 'x', osUser: 'x', reason: null, at: 1 }), undefined);
    });

    test('rate bucket: starts full, grants at most what it holds, says when the next token falls due, refills with time', async () => {
      const first = await store.takeTokens('directory-a', 20, 4, 3);
      assert.deepEqual(first, { granted: 3, waitMs: 0 });
      const second = await store.takeTokens('directory-a', 20, 4, 3);
      assert.ok(second.granted >= 1 && second.granted <= 2, `granted ${second.granted}`);
      const empty = await store.takeTokens('directory-a', 20, 4, 3);
      assert.ok(empty.granted <= 1);
      const drained = await store.takeTokens('directory-a', 20, 4, 3);
      if (drained.granted === 0) assert.ok(drained.waitMs > 0 && drained.waitMs <= 50, `waitMs ${drained.waitMs}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
      assert.equal((await store.takeTokens('directory-a', 20, 4, 10)).granted, 4, 'refilled to the burst, no more');
      assert.equal((await store.takeTokens('directory-b', 20, 4, 1)).granted, 1, 'buckets are apart');
    });

    test('rate bucket: takes from many callers at once never grant more than the bucket held', async () => {
      const grants = await Promise.all(Array.from({ length: 20 }, () => store.takeTokens('directory-c', 1, 10, 2)));
      const granted = grants.reduce((sum, grant) => sum + grant.granted, 0);
      assert.ok(granted >= 10 && granted <= 11, `granted ${granted} of a bucket of 10 refilling at 1/s`);
    });
  });
}

test('SQLite: a store from before plans (main schema 7, side file 2) upgrades in place', async () => {
  const path = join(tempDir(), 'store.db');
  const db = new DatabaseSync(path);
  db.exec('CREATE TABLE ckpt_schema (version INTEGER NOT NULL)');
  for (const migration of sqliteMigrations.filter((candidate) => candidate.id <= 7)) {
    db.exec(migration.sql);
    db.prepare('INSERT INTO ckpt_schema (version) VALUES (?)').run(migration.id);
  }
  db.close();
  const side = new DatabaseSync(`${path}.effects`);
  for (const migration of sqliteSideMigrations.filter((candidate) => candidate.id <= 2)) side.exec(migration.sql);
  side.exec('PRAGMA user_version = 2');
  side.close();
  const store = new SqliteStore(path);
  try {
    await store.migrate();
    await checkPlansWork(store, 'sqlite-upgrade');
  } finally {
    await store.close();
  }
});

test('PostgreSQL: a store from before plans (schema 6) upgrades in place', async () => {
  const database = await freshDatabase();
  try {
    await withPool(database.url, async (pool) => {
      await pool.query('CREATE SCHEMA old_store');
      await pool.query('CREATE TABLE old_store.ckpt_schema (version INTEGER NOT NULL)');
      for (const migration of postgresMigrations.filter((candidate) => candidate.id <= 6)) {
        await pool.query(migration.sql.replaceAll('{schema}', 'old_store'));
        await pool.query('INSERT INTO old_store.ckpt_schema (version) VALUES ($1)', [migration.id]);
      }
    });
    const store = new PostgresStore({ connectionString: database.url, schema: 'old_store' });
    try {
      await store.migrate();
      await checkPlansWork(store, 'pg-upgrade');
    } finally {
      await store.close();
    }
  } finally {
    await database.drop();
  }
});

test('MySQL: a store from before plans (schema 5) upgrades in place', { skip: await mysqlSkip() }, async () => {
  const database = await freshMysqlDatabase();
  try {
    await withMysqlPool(database.url, async (pool) => {
      await pool.query('CREATE TABLE old_schema (version INT NOT NULL)');
      for (const migration of mysqlMigrations.filter((candidate) => candidate.id <= 5)) {
        for (const statement of migration.statements) await pool.query(statement.replaceAll('{p}', 'old_'));
        await pool.query('INSERT INTO old_schema (version) VALUES (?)', [migration.id]);
      }
    });
    const store = new MysqlStore({ url: database.url, prefix: 'old_', database: database.name });
    try {
      await store.migrate();
      await checkPlansWork(store, 'mysql-upgrade');
    } finally {
      await store.close();
    }
  } finally {
    await database.drop();
  }
});
