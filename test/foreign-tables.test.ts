// A store pointed at another application's tables: a SQLite file of another program, a MySQL
// database with an empty (or colliding) `?prefix=`. The store is refused in one line (exit 2)
// before anything is written, and the other application's tables are left as they were found:
// MySQL's migrations (`CREATE TABLE IF NOT EXISTS`, then `ALTER TABLE`) adopted a job's own
// `runs` table and added three columns to it; SQLite failed with "unexpected error: table runs
// already exists" (exit 1) after creating its schema table in the other program's file.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { isOneLineError, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

function sqliteNames(path: string): string[] {
  const db = new DatabaseSync(path);
  try {
    return db
      .prepare('SELECT name FROM sqlite_master ORDER BY name')
      .all()
      .map((row) => String(row.name));
  } finally {
    db.close();
  }
}

test('a SQLite file of another program is refused (exit 2, one line) and left as it was', async () => {
  const dir = tempDir();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = `${dir}/app.db`;
  const app = new DatabaseSync(path);
  app.exec("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO runs VALUES (1, 'payroll'); CREATE TABLE events (x)");
  app.close();
  const before = sqliteNames(path);
  for (const args of [['status'], ['runs', 'payroll'], ['dashboard', '--port', '0']]) {
    const result = await runCli([...args, '--store', `sqlite:${path}`]);
    assert.equal(result.code, 2, `${args[0]}: ${result.stderr}`);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, /is not a checkpointed store, but already holds tables the store would create \(events, runs\); point --store at another file/);
  }
  assert.deepEqual(sqliteNames(path), before, 'nothing was created in the other program’s file');
  const check = new DatabaseSync(path);
  assert.deepEqual({ ...check.prepare('SELECT * FROM runs').get() }, { id: 1, name: 'payroll' });
  check.close();
});

test('a SQLite file holding only tables of its own names (a job’s, made before its first run) is a store', async () => {
  const dir = tempDir();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = `${dir}/store.db`;
  const app = new DatabaseSync(path);
  app.exec('CREATE TABLE evidence (id TEXT PRIMARY KEY)');
  app.close();
  const result = await runCli(['status', '--store', `sqlite:${path}`]);
  assert.equal(result.code, 0, result.stderr);
  assert.ok(sqliteNames(path).includes('instances'));
});

test('MySQL: an empty ?prefix= over a database with its own runs table is refused and alters nothing', { skip: await mysqlSkip() }, async () => {
  const database = await freshMysqlDatabase('ckpt_foreign');
  cleanups.push(() => database.drop());
  await mysqlRows(database.url, 'CREATE TABLE runs (id INT PRIMARY KEY, name TEXT)');
  await mysqlRows(database.url, "INSERT INTO runs VALUES (1, 'payroll')");
  const columns = async () =>
    (
      await mysqlRows(
        database.url,
        'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position',
        ['runs'],
      )
    ).map((row) => row.c);
  const tables = async () => (await mysqlRows(database.url, 'SHOW TABLES')).map((row) => Object.values(row)[0]);
  for (const args of [['status'], ['events', 'payroll']]) {
    const result = await runCli([...args, '--store', `${database.url}?prefix=`]);
    assert.equal(result.code, 2, `${args[0]}: ${result.stderr}`);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, /is not a checkpointed store, but already holds tables the store would create \(runs\); choose a \?prefix= that names none/);
  }
  assert.deepEqual(await columns(), ['id', 'name'], 'the job’s runs table keeps its columns');
  assert.deepEqual(await tables(), ['runs'], 'no table was created');
  // The default prefix on the same database is a store, and keeps the job's table apart.
  const status = await runCli(['status', '--store', database.url]);
  assert.equal(status.code, 0, status.stderr);
  assert.deepEqual(await columns(), ['id', 'name']);
  // And a store made under the empty prefix, then opened again, is its own (a schema table).
  const other = await freshMysqlDatabase('ckpt_foreign');
  cleanups.push(() => other.drop());
  for (let open = 0; open < 2; open++) {
    const again = await runCli(['status', '--store', `${other.url}?prefix=`]);
    assert.equal(again.code, 0, again.stderr);
  }
});
