// A source configured wrongly (a table or key column its database does not have, on SQLite,
// PostgreSQL and MySQL; a csvFile quote or delimiter that cannot be) ends `ckpt run` with exit 2
// and one line saying what to fix: no run again can fix it, so "failed … run again to resume"
// (exit 1) would send the operator round in circles. Met before the first record (the rows
// fingerprint asks the table first) and inside the record loop (fingerprint 'shape') alike.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { ExitCode } from '../src/errors.ts';
import { fixture, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const FIX_SQL = /^ckpt: SQL source: .*; give the table, key and columns the source database has/;

async function refused(params: string[], expected: RegExp[], store: string): Promise<void> {
  const args = ['run', fixture('source-options.ts'), '--store', `sqlite:${store}`];
  for (const param of params) args.push('--param', param);
  const run = await runCli(args);
  const lines = run.stderr.trim().split('\n');
  assert.equal(run.code, ExitCode.usage, `${params.join(' ')}: ${run.stdout.slice(-400)} ${run.stderr}`);
  assert.equal(lines.length, 1, `one line: ${run.stderr}`);
  for (const pattern of expected) assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(run.stdout + run.stderr, /run again to resume| {4}at /);
}

/** Each mistake, met before the first record and inside the record loop. */
async function sqlMistakes(input: string, missingTable: RegExp, missingColumn: RegExp): Promise<void> {
  const store = join(tempDir('ckpt-source-mistakes-'), 'store.db');
  for (const fingerprint of ['rows', 'shape']) {
    await refused(['kind=sql', `input=${input}`, 'table=no_such_table', `fingerprint=${fingerprint}`], [FIX_SQL, missingTable], store);
    await refused(['kind=sql', `input=${input}`, 'key=no_such_key', `fingerprint=${fingerprint}`], [FIX_SQL, missingColumn], store);
  }
}

test('sqlTable on SQLite: a missing table or key column is exit 2, one line', { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-source-mistakes-');
  const db = new DatabaseSync(join(dir, 'user.db'));
  db.exec("CREATE TABLE src (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO src VALUES (1, 'a')");
  db.close();
  await sqlMistakes(`sqlite:${join(dir, 'user.db')}`, /no such table: no_such_table; /, /no such column: "no_such_key"; /);
});

test('sqlTable on PostgreSQL: a missing table or key column is exit 2, one line', { timeout: 60_000 }, async () => {
  const database = await freshDatabase('ckpt_source_mistakes');
  after(() => database.drop());
  await withPool(database.url, (pool) => pool.query("CREATE TABLE src (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO src VALUES (1, 'a')"));
  await sqlMistakes(database.url, /relation "no_such_table" does not exist; /, /column "no_such_key" does not exist; /);
});

test('sqlTable on MySQL/MariaDB: a missing table or key column is exit 2, one line', { timeout: 60_000 }, async (t) => {
  const why = await mysqlSkip();
  if (why !== false) {
    t.skip(`MySQL: ${why}`);
    return;
  }
  const database = await freshMysqlDatabase('ckpt_source_mistakes');
  after(() => database.drop());
  await withMysqlPool(database.url, async (pool) => {
    await pool.query('CREATE TABLE src (id INTEGER PRIMARY KEY, v TEXT)');
    await pool.query("INSERT INTO src VALUES (1, 'a')");
  });
  await sqlMistakes(database.url, /Table '.*no_such_table' doesn't exist; /, /Unknown column .*no_such_key.*; /);
});

test("sqlTable: a table or key that no SQL name can be (the dialect's quote in it) is exit 2, one line", { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-source-mistakes-');
  const store = join(dir, 'store.db');
  for (const name of ['table=a"b', 'key=a"b']) {
    await refused(['kind=sql', `input=sqlite:${join(dir, 'user.db')}`, name], [/^ckpt: sqlTable: not a usable SQL name: "a\\"b"/], store);
  }
});

test("csvFile: quote '' or delimiter '' is exit 2, one line", { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-source-mistakes-');
  const csv = join(dir, 'in.csv');
  writeFileSync(csv, 'id,v\n1,a\n');
  const store = join(dir, 'store.db');
  await refused(['kind=csv', `input=${csv}`, 'quote='], [/^ckpt: csvFile: quote must be one ASCII character \(got ""\)$/], store);
  await refused(['kind=csv', `input=${csv}`, 'delimiter='], [/^ckpt: csvFile: delimiter must be a non-empty string/], store);
});
