// Stores made before guards (issue 21) upgrade in place: a store at the schema just before the
// guards' migration (SQLite: its side file at version 4; PostgreSQL: 6; MySQL: 5), with a job
// already run on it, is opened by this version, which adds the guards' tables; a job with a
// limit is then held at it, approved, and completes, and the old history stays.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { defineJob, range, runJob } from '../src/index.ts';
import { MysqlStore } from '../src/mysql.ts';
import { PostgresStore } from '../src/postgres.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { mysqlMigrations } from '../src/store/mysql/mysql-migrations.ts';
import { postgresMigrations } from '../src/store/postgres/postgres-migrations.ts';
import { sqliteSideMigrations } from '../src/store/sqlite/sqlite-migrations.ts';
import type { Store } from '../src/store.ts';
import { tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const plain = defineJob<number>({
  name: 'before-guards',
  source: () => range(0, 3),
  async process(n, ctx) {
    await ctx.once(`disable:${n}`, () => undefined);
  },
});

const limited = defineJob<number>({
  name: 'with-limit',
  source: () => range(0, 6),
  limits: { disable: { max: 3 } },
  async process(n, ctx) {
    await ctx.once(`disable:${n}`, () => undefined);
  },
});

/** The upgraded store: the old instance is still complete; a limit holds, an approval releases, the job completes. */
async function guardsWork(store: Store, ranBefore: boolean): Promise<void> {
  await store.migrate();
  if (ranBefore) assert.equal((await runJob(plain, { store })).outcome, 'already-complete', 'the old instance and its history stay');
  const held = await runJob(limited, { store });
  assert.equal(held.outcome, 'held');
  const [instance] = await store.listInstances('with-limit');
  assert.ok(instance);
  assert.deepEqual(await store.effectCounts(instance.id, instance.generation), [{ kind: 'disable', used: 3, raised: 0 }]);
  const approved = await store.approve(instance.id, instance.generation, { name: 'limit:disable', by: 'ops', osUser: null, reason: 'upgrade test', raise: 3 });
  assert.ok(approved.outcome === 'recorded' && approved.released);
  assert.equal((await runJob(limited, { store })).outcome, 'completed');
  await store.close();
}

test('SQLite: a store whose side file predates the guards (version 4) upgrades in place', async () => {
  const dir = tempDir('ckpt-guard-upgrade-');
  const path = join(dir, 'store.db');
  const old = new SqliteStore(path);
  await old.migrate();
  assert.equal((await runJob(plain, { store: old })).outcome, 'completed');
  await old.close();
  // Back to the side file an earlier checkpointed left: no guards' tables (nor what came after them), user_version 4.
  const side = new DatabaseSync(`${path}.effects`);
  const guardsAt = sqliteSideMigrations.find((migration) => migration.name.startsWith('guards'))?.id ?? 0;
  assert.equal(guardsAt, 5);
  side.exec('DROP TABLE effect_counts; DROP TABLE holds; DROP TABLE approvals; ALTER TABLE effects DROP COLUMN run_id; PRAGMA user_version = 4');
  side.close();
  await guardsWork(new SqliteStore(path), true);
  const upgraded = new DatabaseSync(`${path}.effects`);
  assert.equal(Number(upgraded.prepare('PRAGMA user_version').get()?.user_version), sqliteSideMigrations.at(-1)?.id);
  upgraded.close();
});

test('PostgreSQL: a schema-6 store upgrades in place', { timeout: 60_000 }, async () => {
  const database = await freshDatabase();
  cleanups.push(database.drop);
  await withPool(database.url, async (pool) => {
    await pool.query('CREATE SCHEMA ckpt');
    await pool.query('CREATE TABLE ckpt.ckpt_schema (version INTEGER NOT NULL)');
    for (const migration of postgresMigrations.filter((candidate) => candidate.id <= 6)) {
      await pool.query(migration.sql.replaceAll('{schema}.', '"ckpt".'));
      await pool.query('INSERT INTO ckpt.ckpt_schema (version) VALUES ($1)', [migration.id]);
    }
  });
  const old = new PostgresStore({ connectionString: database.url, schema: 'ckpt' });
  await withPool(database.url, async (pool) => {
    const versions = (await pool.query('SELECT version FROM ckpt.ckpt_schema')).rows.map((row) => Number(row.version));
    assert.deepEqual(versions, [1, 2, 3, 4, 5, 6]);
  });
  await guardsWork(old, false);
  await withPool(database.url, async (pool) => {
    const versions = (await pool.query('SELECT version FROM ckpt.ckpt_schema ORDER BY version')).rows.map((row) => Number(row.version));
    assert.ok(versions.includes(7), 'the guards migration (7) applied');
  });
});

test('MySQL/MariaDB: a schema-5 store upgrades in place', { timeout: 60_000, skip: await mysqlSkip() }, async () => {
  const database = await freshMysqlDatabase();
  cleanups.push(database.drop);
  await withMysqlPool(database.url, async (pool) => {
    await pool.query('CREATE TABLE ckpt_schema (version INT NOT NULL)');
    for (const migration of mysqlMigrations.filter((candidate) => candidate.id <= 5)) {
      for (const statement of migration.statements) await pool.query(statement.replaceAll('{p}', 'ckpt_'));
      await pool.query('INSERT INTO ckpt_schema (version) VALUES (?)', [migration.id]);
    }
  });
  await guardsWork(new MysqlStore({ url: database.url, prefix: 'ckpt_', database: database.name }), false);
  await withMysqlPool(database.url, async (pool) => {
    const [rows] = (await pool.query('SELECT version FROM ckpt_schema ORDER BY version')) as unknown as [{ version: number }[]];
    assert.ok(rows.map((row) => Number(row.version)).includes(6), 'the guards migration (6) applied');
  });
});
