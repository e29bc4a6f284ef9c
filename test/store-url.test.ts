// A server store as a user meets it, on PostgreSQL and MySQL/MariaDB: DATABASE_URL, the URL's
// namespace (?schema= on PostgreSQL, ?prefix= on MySQL), a schema from a newer checkpointed
// refused (exit 4, naming both versions), malformed URLs and bad namespaces (exit 2), an
// unreachable server (exit 1) — each one line, no stack trace. Then what only MySQL needs: DDL
// inside ctx.tx refused, a migration cut short finished, a silent session holding a shard row
// ended by the server, and the test helper's throwaway mariadbd.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MysqlStore } from '../src/mysql.ts';
import { boundIdleWait, FROZEN_SESSION_MS } from '../src/store/mysql/mysql-driver.ts';
import type { MysqlTx } from '../src/store/mysql/mysql-tx.ts';
import { fixture, isOneLineError, runCli } from './helpers/cli.ts';
import { findMysql, freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';
import { freePort } from './helpers/postgres.ts';
import { perStore, sqlStores } from './helpers/sql-stores.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});
const env = { CKPT_TEST_SHARDS: '3', CKPT_TEST_RECORDS: '20' };

for (const store of sqlStores.filter((candidate) => candidate.name !== 'sqlite')) {
  const skip = await store.skip();
  describe(`the ${store.title} store from the command line`, () => {
    /** The namespace parameter of this store's URL, and a valid value of it. */
    const [parameter, teamA] = perStore(store.name, { sqlite: ['', ''], postgres: ['schema', 'team_a'], mysql: ['prefix', 'team_a_'] });

    async function database() {
      const created = await store.database();
      cleanups.push(() => created.drop());
      await created.rows(
        perStore(store.name, {
          sqlite: '',
          postgres: 'CREATE TABLE "out" (shard TEXT NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL)',
          mysql: 'CREATE TABLE "out" (shard VARCHAR(64) NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL)',
        }),
      );
      return created;
    }

    test(`DATABASE_URL names the store; ?${parameter}= puts its tables there; status reads it back`, { skip }, async () => {
      const created = await database();
      const url = created.store(teamA);
      const run = await runCli(['run', fixture('shard-job.ts'), '--quiet'], { env: { ...env, DATABASE_URL: url } });
      assert.equal(run.code, 0, run.stderr);
      const [checkpoints] = await created.rows(`SELECT count(*) AS c FROM ${created.table('checkpoints', teamA)}`);
      assert.ok(Number(checkpoints?.c) > 0, `the checkpoints are in ${created.table('checkpoints', teamA)}`);
      assert.equal(Number((await created.rows('SELECT count(*) AS c FROM "out"'))[0]?.c), 60);
      const status = await runCli(['status', '--store', url, '--json']);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /"shards"/);
      const again = await runCli(['run', fixture('shard-job.ts'), '--store', url]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /already complete/);
    });

    test('a schema written by a newer checkpointed → exit 4, naming both versions', { skip }, async () => {
      const created = await database();
      const namespace = perStore(store.name, { sqlite: undefined, postgres: 'newer', mysql: undefined });
      const url = created.store(namespace);
      assert.equal((await runCli(['status', '--store', url])).code, 0);
      // The schema version table: `ckpt_schema` in the schema on PostgreSQL, `<prefix>schema` on MySQL.
      const versions = created.table(perStore(store.name, { sqlite: '', postgres: 'ckpt_schema', mysql: 'schema' }), namespace);
      await created.rows(`INSERT INTO ${versions} (version) VALUES (99)`);
      const result = await runCli(['run', fixture('shard-job.ts'), '--store', url], { env });
      assert.equal(result.code, 4, result.stderr);
      assert.ok(isOneLineError(result.stderr), result.stderr);
      assert.match(result.stderr, /schema version 99, newer than version \d+ .*unsafe to continue/);
    });

    test(`malformed URLs and a bad ${parameter} name → exit 2, one line`, async () => {
      const cases: readonly (readonly [string, RegExp])[] = perStore(store.name, {
        sqlite: [],
        postgres: [['postgres://u@127.0.0.1/db?schema=no-dashes', /schema name "no-dashes" is not valid/]],
        mysql: [
          ['mysql://u@127.0.0.1', /names no database/],
          ['mysql://u:secret@/db', /not a valid MySQL URL/],
          ['mysql://u:secret@h:notaport/db', /not a valid MySQL URL/],
          ['mysql://u@127.0.0.1/db?prefix=no-dashes', /table prefix "no-dashes" is not valid/],
        ],
      });
      for (const [url, message] of cases) {
        const result = await runCli(['status', '--store', url]);
        assert.equal(result.code, 2, `${url}: ${result.stderr}`);
        assert.ok(isOneLineError(result.stderr), result.stderr);
        assert.match(result.stderr, message);
        assert.doesNotMatch(result.stderr, /secret/);
      }
    });

    test('nothing listening at the URL → exit 1, one line saying what to check', async () => {
      const result = await runCli(['status', '--store', `${store.name}://u:secret@127.0.0.1:${await freePort()}/db`]);
      assert.equal(result.code, 1, result.stderr);
      assert.ok(isOneLineError(result.stderr), result.stderr);
      assert.match(result.stderr, /unreachable: .*ECONNREFUSED.*check that the server is up/);
      assert.doesNotMatch(result.stderr, /secret/);
    });
  });
}

const skip = await mysqlSkip();
describe('what only MySQL needs', () => {
  async function database() {
    const created = await freshMysqlDatabase();
    cleanups.push(created.drop);
    await mysqlRows(created.url, 'CREATE TABLE `out` (shard VARCHAR(64) NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL)');
    return created;
  }

  test('DDL through ctx.tx is refused: MySQL would commit the open chunk without its checkpoint', { skip }, async () => {
    const { url, name } = await database();
    const store = new MysqlStore({ url, database: name });
    cleanups.push(() => store.close());
    await store.migrate();
    const instance = await store.instance('ddl', 'h', { params: {}, version: null });
    await store.ensureShards(instance, ['main'], { version: null });
    const lease = await store.claim(instance, 'w1', 60_000);
    assert.ok(lease);
    const tx = await store.begin(lease);
    await tx.sql?.query('INSERT INTO `out` (shard, n, pid) VALUES (?, ?, ?)', ['main', 1, 1]);
    await assert.rejects(tx.sql?.query('CREATE TABLE made_in_tx (n INTEGER)') ?? Promise.resolve(), /ended the job's transaction/);
    await assert.rejects(
      tx.sql?.query('INSERT INTO `out` (shard, n, pid) VALUES (?, ?, ?)', ['main', 2, 1]) ?? Promise.resolve(),
      /ended the job's transaction/,
    );
    await assert.rejects(store.commit(tx, { position: 2, state: {}, processed: 2 }, {}), /ended the job's transaction/);
    assert.equal((await store.latest(lease)).checkpoint, undefined, 'no checkpoint was committed');
  });

  test('a migration cut short after its DDL (MySQL commits DDL by itself) is finished by the next migrate', { skip }, async () => {
    const { url, name } = await database();
    const store = new MysqlStore({ url, database: name });
    cleanups.push(() => store.close());
    await store.migrate();
    const [{ version = 0 } = {}] = await mysqlRows(url, 'SELECT max(version) AS version FROM ckpt_schema');
    assert.ok(Number(version) >= 2, 'there is a migration past the first to cut short');
    // As if the process died between the last migration's ALTER and its version row.
    await mysqlRows(url, 'DELETE FROM ckpt_schema WHERE version = ?', [version]);
    await store.migrate();
    assert.deepEqual(await mysqlRows(url, 'SELECT max(version) AS version FROM ckpt_schema'), [{ version }]);
  });

  test('a session gone silent while it holds a shard row (a frozen worker mid-commit) is ended by the server', { skip, timeout: 60_000 }, async () => {
    const { url, name } = await database();
    const store = new MysqlStore({ url, database: name });
    cleanups.push(() => store.close());
    await store.migrate();
    const instance = await store.instance('frozen', 'h', { params: {}, version: null });
    await store.ensureShards(instance, ['main'], { version: null });
    const lease = await store.claim(instance, 'frozen-worker', 1000);
    assert.ok(lease);
    // What a commit does first (mysql-checkpoints.ts), then silence: as if SIGSTOPped right there.
    const tx = (await store.begin(lease)) as MysqlTx;
    tx.boundWait = true;
    await tx.query(boundIdleWait(Math.max(lease.leaseMs, FROZEN_SESSION_MS)));
    await tx.query(`SELECT lease_token FROM ckpt_shards WHERE id = ? FOR UPDATE`, [lease.shardId]);
    const frozenAt = Date.now();
    await sleep(lease.leaseMs + 100);
    // The lease has expired, but the row is locked: SKIP LOCKED passes the shard by...
    assert.equal(await store.claim(instance, 'other', 30_000), null, 'the locked shard is skipped, not waited for');
    // ...until the server ends the silent session and rolls it back.
    let next = null;
    while (next === null && Date.now() - frozenAt < 20_000) {
      await sleep(250);
      next = await store.claim(instance, 'other', 30_000);
    }
    assert.ok(next, 'the shard was claimable again');
    const waited = Date.now() - frozenAt;
    assert.ok(waited >= FROZEN_SESSION_MS - 500 && waited < FROZEN_SESSION_MS + 5000, `claimable after ${waited} ms`);
    await assert.rejects(tx.query('SELECT 1'), /lost the transaction/);
  });

  test('the test helper starts a throwaway mariadbd when nothing answers on the probed port', {
    skip: existsSync('/usr/sbin/mariadbd') ? false : 'no /usr/sbin/mariadbd',
  }, async () => {
    const saved = { url: process.env.MYSQL_URL, probe: process.env.CKPT_TEST_MYSQL_PROBE };
    delete process.env.MYSQL_URL;
    process.env.CKPT_TEST_MYSQL_PROBE = `127.0.0.1:${await freePort()}`;
    try {
      const { availability, server } = await findMysql();
      assert.ok(server, 'a server was started');
      cleanups.push(() => server.destroy());
      assert.ok('url' in availability && /throwaway mariadbd/.test(availability.source), JSON.stringify(availability));
      const [row] = await mysqlRows(availability.url, 'SELECT VERSION() AS version');
      assert.match(String(row?.version), /MariaDB/);
    } finally {
      if (saved.url !== undefined) process.env.MYSQL_URL = saved.url;
      if (saved.probe === undefined) delete process.env.CKPT_TEST_MYSQL_PROBE;
      else process.env.CKPT_TEST_MYSQL_PROBE = saved.probe;
    }
  });
});
