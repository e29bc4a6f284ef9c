// A corrupt newest checkpoint is never used. When the chunk behind it wrote through ctx.tx, its
// rows are committed, so falling back to the checkpoint before would write them again: the run
// is refused (exit 4, one line) unless the operator says `--on-drift resume`. A fallback with no
// ctx.tx writes goes on, and is said on stderr in every output mode, --quiet included.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { toResult } from '../src/store/mysql/mysql-driver.ts';
import { mysqlMigrations } from '../src/store/mysql/mysql-migrations.ts';
import { postgresMigrations } from '../src/store/postgres/postgres-migrations.ts';
import { sqliteMigrations } from '../src/store/sqlite/sqlite-migrations.ts';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/** A store under test: its URL, and plain SQL beside it (to corrupt a checkpoint, to count rows). */
interface Backend {
  name: string;
  skip?: () => Promise<string | false>;
  open(): Promise<{ url: string; sql(text: string): Promise<Record<string, unknown>[]> }>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    async open() {
      const path = join(tempDir('ckpt-corrupt-'), 'store.db');
      return {
        url: `sqlite:${path}`,
        async sql(text) {
          const db = new DatabaseSync(path);
          try {
            if (/^\s*select/i.test(text)) return db.prepare(text).all() as Record<string, unknown>[];
            db.exec(text);
            return [];
          } finally {
            db.close();
          }
        },
      };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const database = await freshDatabase();
      cleanups.push(database.drop);
      return {
        url: `${database.url}?schema=ckpt`,
        sql: (text) => withPool(database.url, async (pool) => (await pool.query(text.replaceAll('{t}', 'ckpt.'))).rows),
      };
    },
  },
  {
    name: 'MySQL/MariaDB',
    skip: mysqlSkip,
    async open() {
      const database = await freshMysqlDatabase();
      cleanups.push(database.drop);
      return {
        url: `${database.url}?prefix=ckpt_`,
        sql: (text) => withMysqlPool(database.url, async (pool) => toResult(await pool.query(text.replaceAll('{t}', 'ckpt_'))).rows),
      };
    },
  },
];

const table = (backend: Backend, name: string) => (backend.name === 'SQLite' ? name : `{t}${name}`);

for (const backend of backends) {
  test(`${backend.name}: a corrupt checkpoint whose chunk wrote through ctx.tx is refused (exit 4), not fallen back from`, {
    timeout: 120_000,
    skip: (await backend.skip?.()) ?? false,
  }, async () => {
    const store = await backend.open();
    // MySQL ends a transaction on DDL, so the table is made before the job runs there.
    if (backend.name.startsWith('MySQL')) await store.sql('CREATE TABLE tx_crash_rows (n INT NOT NULL)');
    const args = ['run', fixture('tx-crash-job.ts'), '--store', store.url, '--quiet'];
    const crashed = await runCli(args, { env: { CRASH_AT: '55' } });
    assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
    const checkpoints = table(backend, 'checkpoints');
    // A bad disk or a bad edit: checkpoint 5's checksum no longer matches.
    await store.sql(`UPDATE ${checkpoints} SET state = '{"tampered":true}' WHERE seq = 5`);

    const refused = await runCli(args);
    assert.equal(refused.code, 4, refused.stderr);
    assert.ok(isOneLineError(refused.stderr), refused.stderr);
    assert.match(
      refused.stderr,
      /^ckpt: shard main: checkpoint 5 fails its checksum, and the chunk behind it wrote through ctx\.tx; resuming from checkpoint 4 would write those rows again/,
    );
    const rows = await store.sql('SELECT count(*) AS n, count(DISTINCT n) AS d FROM tx_crash_rows');
    assert.deepEqual([Number(rows[0]?.n), Number(rows[0]?.d)], [50, 50], 'the refused run wrote nothing');
    const seqs = await store.sql(`SELECT seq, wrote_tx FROM ${checkpoints} ORDER BY seq`);
    assert.deepEqual(
      seqs.map((row) => [Number(row.seq), Number(row.wrote_tx)]),
      [1, 2, 3, 4, 5].map((seq) => [seq, 1]),
      'each checkpoint says its chunk wrote through ctx.tx',
    );

    // The operator's call: fall back anyway (that chunk's rows are written again, as asked).
    const forced = await runCli([...args, '--on-drift', 'resume']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /checkpoint 5 of shard main failed its checksum; resuming from checkpoint 4/);
    const after = await store.sql('SELECT count(*) AS n, count(DISTINCT n) AS d FROM tx_crash_rows');
    assert.deepEqual([Number(after[0]?.n), Number(after[0]?.d)], [110, 100]);
  });
}

for (const mode of ['--quiet', 'default'] as const) {
  test(`a fallback from a corrupt checkpoint with no ctx.tx writes is said on stderr (${mode})`, { timeout: 60_000 }, async () => {
    const store = await backends[0]!.open();
    const args = ['run', fixture('tx-crash-job.ts'), '--store', store.url];
    const env = { NO_TX: '1' };
    assert.equal((await runCli(args, { env: { ...env, CRASH_AT: '55' } })).signal, 'SIGKILL');
    await store.sql(`UPDATE checkpoints SET state = '{"tampered":true}' WHERE seq = 5`);
    const resumed = await runCli(mode === '--quiet' ? [...args, '--quiet'] : args, { env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /^checkpoint 5 of shard main failed its checksum; resuming from checkpoint 4: the records after it are done again$/m);
    const written = await store.sql('SELECT wrote_tx FROM checkpoints');
    assert.ok(written.length === 5 && written.every((row) => Number(row.wrote_tx) === 0), 'no chunk wrote through ctx.tx');
  });
}

/** The schema of the release before the checkpoints' ctx.tx flag, built from its own migrations. */
const oldSchema: Record<string, (sql: (text: string) => Promise<Record<string, unknown>[]>) => Promise<void>> = {
  SQLite: async (sql) => {
    await sql('CREATE TABLE ckpt_schema (version INTEGER NOT NULL)');
    for (const migration of sqliteMigrations.filter((candidate) => candidate.id <= 5)) {
      await sql(migration.sql);
      await sql(`INSERT INTO ckpt_schema (version) VALUES (${migration.id})`);
    }
  },
  PostgreSQL: async (sql) => {
    await sql('CREATE SCHEMA ckpt');
    await sql('CREATE TABLE ckpt.ckpt_schema (version INTEGER NOT NULL)');
    for (const migration of postgresMigrations.filter((candidate) => candidate.id <= 4)) {
      await sql(migration.sql.replaceAll('{schema}.', 'ckpt.'));
      await sql(`INSERT INTO ckpt.ckpt_schema (version) VALUES (${migration.id})`);
    }
  },
  'MySQL/MariaDB': async (sql) => {
    await sql('CREATE TABLE ckpt_schema (version INT NOT NULL)');
    for (const migration of mysqlMigrations.filter((candidate) => candidate.id <= 3)) {
      for (const statement of migration.statements) await sql(statement.replaceAll('{p}', 'ckpt_'));
      await sql(`INSERT INTO ckpt_schema (version) VALUES (${migration.id})`);
    }
  },
};

for (const backend of backends) {
  test(`${backend.name}: a store of the release before upgrades: its checkpoints then say whether their chunk wrote through ctx.tx`, {
    timeout: 120_000,
    skip: (await backend.skip?.()) ?? false,
  }, async () => {
    const store = await backend.open();
    await oldSchema[backend.name]?.(store.sql);
    if (backend.name.startsWith('MySQL')) await store.sql('CREATE TABLE tx_crash_rows (n INT NOT NULL)');
    const crashed = await runCli(['run', fixture('tx-crash-job.ts'), '--store', store.url, '--quiet'], { env: { CRASH_AT: '25' } });
    assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
    const flags = await store.sql(`SELECT wrote_tx FROM ${table(backend, 'checkpoints')} ORDER BY seq`);
    assert.deepEqual(
      flags.map((row) => Number(row.wrote_tx)),
      [1, 1],
    );
    const shards = await store.sql(`SELECT code FROM ${table(backend, 'shards')}`);
    assert.equal(shards.length, 1, 'the shards table has its code column');
  });
}
