// Stores written before the audit chain upgrade in place: their migrations are numbered and
// forward only. An old store (the schema of the last release, built from its own migrations, with
// an instance, two events and an effect journal entry) is run by this version: the old events
// are still in `ckpt events`, counted by `ckpt audit --verify` as predating the chain, the new
// ones are chained after them, and the journal still answers for the done effect.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { hashJson } from '../src/json.ts';
import { mysqlMigrations } from '../src/store/mysql/mysql-migrations.ts';
import { postgresMigrations } from '../src/store/postgres/postgres-migrations.ts';
import { sqliteMigrations } from '../src/store/sqlite/sqlite-migrations.ts';
import { fixture, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const PARAMS = { round: 'old' };
const OLD_EVENTS = [
  { type: 'run:start', data: { shard: 'main', worker: 'oldhost:1', runId: 1, total: 25 } },
  { type: 'run:crashed', data: { shard: 'main', worker: 'oldhost:1', runId: 1, processed: 0 } },
];

/** Runs the job on the upgraded store and checks what the old store's history became. */
async function runAndAudit(store: string, journalAnswers: boolean): Promise<void> {
  const log = join(tempDir(), 'effects.log');
  const run = await runCli(['run', fixture('audit-effects.ts'), '--store', store, '--param', 'round=old', '--quiet'], { env: { EFFECT_LOG: log } });
  assert.equal(run.code, 0, run.stderr);
  if (journalAnswers) assert.ok(!readFileSync(log, 'utf8').includes('call notify:0\n'), 'the old journal entry (notify:0 done) still answers');
  const listed = await runCli(['events', 'audit-effects', '--store', store, '--json']);
  const events = JSON.parse(listed.stdout) as { type: string; chain: unknown }[];
  assert.deepEqual(
    events.slice(0, 2).map((event) => [event.type, event.chain]),
    [
      ['run:start', null],
      ['run:crashed', null],
    ],
    'the old events come first, unlinked',
  );
  assert.ok(events.slice(2).every((event) => event.chain !== null));
  assert.ok(events.some((event) => event.type === 'instance:complete'));
  const audit = await runCli(['audit', 'audit-effects', '--store', store, '--verify']);
  assert.equal(audit.code, 0, audit.stderr);
  assert.match(audit.stdout, new RegExp(`: ${events.length - 2} events, chain intact; .*2 earlier events predate the chain`));
}

test('SQLite: a schema-4 store and its old effect journal upgrade; old events kept, outside the chain', { timeout: 60_000 }, async () => {
  const path = join(tempDir(), 'store.db');
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('CREATE TABLE ckpt_schema (version INTEGER NOT NULL)');
  for (const migration of sqliteMigrations.filter((candidate) => candidate.id <= 4)) {
    db.exec(migration.sql);
    db.prepare('INSERT INTO ckpt_schema (version) VALUES (?)').run(migration.id);
  }
  db.prepare('INSERT INTO instances (job, params_hash, params, created_at) VALUES (?, ?, ?, ?)').run(
    'audit-effects',
    hashJson(PARAMS),
    JSON.stringify(PARAMS),
    1,
  );
  for (const [i, event] of OLD_EVENTS.entries()) {
    db.prepare('INSERT INTO events (instance_id, generation, run_id, shard, type, at, data) VALUES (1, 1, 1, ?, ?, ?, ?)').run(
      'main',
      event.type,
      10 + i,
      JSON.stringify(event.data),
    );
  }
  const storeId = String(db.prepare("SELECT value FROM ckpt_meta WHERE key = 'store_id'").get()?.value);
  db.close();
  // The journal file as the last release made it: one table, no user_version.
  const side = new DatabaseSync(`${path}.effects`);
  side.exec(`CREATE TABLE effects (
    store_id TEXT NOT NULL, instance_id INTEGER NOT NULL, generation INTEGER NOT NULL, key TEXT NOT NULL,
    status TEXT NOT NULL, result TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL,
    PRIMARY KEY (store_id, instance_id, generation, key))`);
  side.prepare("INSERT INTO effects VALUES (?, 1, 1, 'notify:0', 'done', '{\"sent\":0}', 1, 1)").run(storeId);
  side.close();

  await runAndAudit(`sqlite:${path}`, true);
  const upgraded = new DatabaseSync(path, { readOnly: true });
  assert.equal(Number(upgraded.prepare('SELECT max(version) AS v FROM ckpt_schema').get()?.v), sqliteMigrations.at(-1)?.id);
  assert.equal(Number(upgraded.prepare('SELECT count(*) AS n FROM events_before_audit').get()?.n), 2, 'the old rows stay where they were');
  upgraded.close();
  assert.ok(existsSync(`${path}.effects`));
});

test('PostgreSQL: a schema-3 store upgrades; old events kept, outside the chain', { timeout: 60_000 }, async () => {
  const database = await freshDatabase();
  cleanups.push(database.drop);
  await withPool(database.url, async (pool) => {
    await pool.query('CREATE SCHEMA ckpt');
    await pool.query('CREATE TABLE ckpt.ckpt_schema (version INTEGER NOT NULL)');
    for (const migration of postgresMigrations.filter((candidate) => candidate.id <= 3)) {
      await pool.query(migration.sql.replaceAll('{schema}.', '"ckpt".'));
      await pool.query('INSERT INTO ckpt.ckpt_schema (version) VALUES ($1)', [migration.id]);
    }
    await pool.query('INSERT INTO ckpt.instances (job, params_hash, params, created_at) VALUES ($1, $2, $3, 1)', [
      'audit-effects',
      hashJson(PARAMS),
      JSON.stringify(PARAMS),
    ]);
    for (const [i, event] of OLD_EVENTS.entries()) {
      await pool.query('INSERT INTO ckpt.events (instance_id, generation, run_id, shard, type, at, data) VALUES (1, 1, 1, $1, $2, $3, $4)', [
        'main',
        event.type,
        10 + i,
        JSON.stringify(event.data),
      ]);
    }
  });
  await runAndAudit(`${database.url}?schema=ckpt`, false);
});

test('MySQL/MariaDB: a schema-2 store upgrades; old events kept, outside the chain', { timeout: 60_000, skip: await mysqlSkip() }, async () => {
  const database = await freshMysqlDatabase();
  cleanups.push(database.drop);
  await withMysqlPool(database.url, async (pool) => {
    await pool.query('CREATE TABLE ckpt_schema (version INT NOT NULL)');
    for (const migration of mysqlMigrations.filter((candidate) => candidate.id <= 2)) {
      for (const statement of migration.statements) await pool.query(statement.replaceAll('{p}', 'ckpt_'));
      await pool.query('INSERT INTO ckpt_schema (version) VALUES (?)', [migration.id]);
    }
    await pool.query('INSERT INTO ckpt_instances (job, params_hash, params, created_at) VALUES (?, ?, ?, 1)', [
      'audit-effects',
      hashJson(PARAMS),
      JSON.stringify(PARAMS),
    ]);
    for (const [i, event] of OLD_EVENTS.entries()) {
      await pool.query('INSERT INTO ckpt_events (instance_id, generation, run_id, shard, type, at, data) VALUES (1, 1, 1, ?, ?, ?, ?)', [
        'main',
        event.type,
        10 + i,
        JSON.stringify(event.data),
      ]);
    }
  });
  await runAndAudit(`${database.url}?prefix=ckpt_`, false);
});
