// A store whose checkpoints are gone while its effect journal or audit chain remains is refused
// (exit 4), never taken for a new store: a new store would start at record 0 and run every
// `scope: 'instance'` effect again, though the journal says they ran.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { StoreIdentityError } from '../src/errors.ts';
import { MysqlStore } from '../src/mysql.ts';
import { PostgresStore } from '../src/postgres.ts';
import { SqliteStore } from '../src/sqlite.ts';
import type { Store } from '../src/store.ts';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const welcomes = (log: string) =>
  existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('welcome')).length
    : 0;

test('a zeroed SQLite store file beside an intact .effects is refused (exit 4) by run and status; no effect runs again', async () => {
  const dir = tempDir();
  const db = join(dir, 's.db');
  const effectLog = join(dir, 'effects.log');
  const args = ['run', fixture('scoped-effects.ts'), '--store', `sqlite:${db}`, '--quiet'];
  const first = await runCli(args, { env: { EFFECT_LOG: effectLog } });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(welcomes(effectLog), 3);

  // A 0-byte main file (a failed copy, a truncating restore) and its WAL gone; the side file intact.
  rmSync(`${db}-wal`, { force: true });
  rmSync(`${db}-shm`, { force: true });
  truncateSync(db, 0);
  const status = await runCli(['status', '--store', `sqlite:${db}`]);
  assert.equal(status.code, 4, `status: ${status.stdout}${status.stderr}`);
  assert.match(status.stderr, /^ckpt: .*s\.db\.effects/m);
  const again = await runCli(args, { env: { EFFECT_LOG: effectLog } });
  assert.equal(again.code, 4, again.stderr);
  assert.match(again.stderr, /^ckpt: /);
  assert.equal(welcomes(effectLog), 3, 'no instance-scoped effect ran again');

  // The same for a main file deleted outright.
  rmSync(db);
  const deleted = await runCli(args, { env: { EFFECT_LOG: effectLog } });
  assert.equal(deleted.code, 4, deleted.stderr);
  assert.equal(welcomes(effectLog), 3);

  // Moving the journal away is the way to start over on purpose.
  rmSync(`${db}.effects`);
  rmSync(`${db}.effects-wal`, { force: true });
  rmSync(`${db}.effects-shm`, { force: true });
  const fresh = await runCli(args, { env: { EFFECT_LOG: effectLog } });
  assert.equal(fresh.code, 0, fresh.stderr);
});

test("a SQLite store whose .effects file was deleted, emptied or swapped for another store's is refused (exit 4) by run, status and audit; no effect runs again", async () => {
  const dir = tempDir();
  const db = join(dir, 's.db');
  const effectLog = join(dir, 'effects.log');
  const store = ['--store', `sqlite:${db}`];
  const args = ['run', fixture('scoped-effects.ts'), ...store, '--quiet'];
  // Record 0 done, record 1 killed right after its issue call: no checkpoint yet, every effect in the journal.
  const crashed = await runCli(args, { env: { EFFECT_LOG: effectLog, CRASH_AFTER_ISSUE: '1' } });
  assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
  const before = readFileSync(effectLog, 'utf8');
  assert.equal(welcomes(effectLog), 2);
  const side = `${db}.effects`;
  const keep = join(dir, 'kept.effects');
  const fresh = join(dir, 'other.db');
  assert.equal(
    (await runCli(['run', fixture('scoped-effects.ts'), '--store', `sqlite:${fresh}`, '--quiet'], { env: { EFFECT_LOG: join(dir, 'other.log') } })).code,
    0,
  );
  // A checkpointed SIGKILL leaves the journal's WAL beside it: fold it in, so the file alone is the journal.
  const folded = new DatabaseSync(side);
  folded.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  folded.close();
  copyFileSync(side, keep);

  const losses: [string, () => void][] = [
    ['deleted', () => rmSync(side)],
    ['emptied (0 bytes)', () => truncateSync(side, 0)],
    ["another store's", () => copyFileSync(`${fresh}.effects`, side)],
  ];
  for (const [how, lose] of losses) {
    for (const suffix of ['-wal', '-shm']) rmSync(`${side}${suffix}`, { force: true });
    lose();
    for (const command of [args, ['status', ...store], ['audit', 'scoped-effects', '--verify', ...store]]) {
      const refused = await runCli(command, { env: { EFFECT_LOG: effectLog } });
      assert.equal(refused.code, 4, `${how}, ckpt ${command[0]}: ${refused.stdout}${refused.stderr}`);
      assert.ok(isOneLineError(refused.stderr), refused.stderr);
      assert.match(refused.stderr, /s\.db\.effects/);
    }
    assert.equal(readFileSync(effectLog, 'utf8'), before, `${how}: no effect ran again, none was verified`);
    // Restoring the journal is the way on: the run resumes, verify settles the issue in doubt.
    for (const suffix of ['-wal', '-shm']) rmSync(`${side}${suffix}`, { force: true });
    copyFileSync(keep, side);
  }
  const resumed = await runCli(args, { env: { EFFECT_LOG: effectLog } });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(welcomes(effectLog), 3, 'each instance-scoped welcome happened once');
  const audit = await runCli(['audit', 'scoped-effects', '--verify', ...store]);
  assert.equal(audit.code, 0, audit.stderr);

  // Starting over on purpose: the store file moved away with its journal.
  for (const file of [db, `${db}-wal`, `${db}-shm`, side, `${side}-wal`, `${side}-shm`]) rmSync(file, { force: true });
  assert.equal((await runCli(args, { env: { EFFECT_LOG: effectLog } })).code, 0);
});

/** Each backend: a store with one instance and its event chain, then what deletes its instances while the log stays. */
const backends: {
  name: string;
  skip?: () => Promise<string | false>;
  make(): Promise<{ open(): Store; emptyInstances(): Promise<void>; drop(): Promise<void> }>;
}[] = [
  {
    name: 'sqlite',
    async make() {
      const path = join(tempDir(), 's.db');
      return {
        open: () => new SqliteStore(path),
        async emptyInstances() {
          const db = new DatabaseSync(path);
          db.exec('PRAGMA foreign_keys = OFF; DELETE FROM instances');
          db.close();
        },
        drop: async () => undefined,
      };
    },
  },
  {
    name: 'postgres',
    async make() {
      const database = await freshDatabase();
      return {
        open: () => new PostgresStore({ connectionString: database.url }),
        // A restore or a hand clean-up that bypasses the foreign keys (as a replica's role does).
        emptyInstances: () =>
          withPool(database.url, async (pool) => {
            await pool.query("SET session_replication_role = 'replica'; DELETE FROM checkpointed.instances; SET session_replication_role = DEFAULT");
          }),
        drop: () => database.drop(),
      };
    },
  },
  {
    name: 'mysql',
    skip: mysqlSkip,
    async make() {
      const database = await freshMysqlDatabase();
      return {
        open: () => new MysqlStore({ url: database.url, database: database.name }),
        emptyInstances: () => mysqlRows(database.url, 'DELETE FROM ckpt_instances').then(() => undefined),
        drop: () => database.drop(),
      };
    },
  },
];

for (const backend of backends) {
  test(`${backend.name}: a store whose instances were emptied while their event chain remains is refused at open (exit 4)`, async (t) => {
    const why = await backend.skip?.();
    if (why) return t.skip(why);
    const made = await backend.make();
    try {
      const store = made.open();
      await store.migrate();
      const instance = await store.instance('identity-job', 'h1', { params: {}, version: null });
      await store.appendEvents(instance.id, instance.generation, [{ type: 'run:start', at: Date.now(), data: { shard: 'default' } }]);
      await store.close();
      await made.emptyInstances();

      const reopened = made.open();
      const refused = await reopened.migrate().then(
        () => undefined,
        (error: unknown) => error,
      );
      await reopened.close();
      assert.ok(refused instanceof StoreIdentityError, `refused: ${String(refused)}`);
      assert.equal(refused.exitCode, 4);
      assert.match(refused.message, new RegExp(`lost job instances \\(id ${instance.id}\\)`));
    } finally {
      await made.drop();
    }
  });
}
