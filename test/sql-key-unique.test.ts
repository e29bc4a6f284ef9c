// sqlTable's key must be unique: pages seek past the last key (`WHERE key > last`), so rows that
// share a key value where a page ends, or where a run resumes, were skipped, and the run
// completed as if they had been read. Such a key now fails the read with one line naming the key
// and the value (the run fails, exit 1), on every database it reads; rows that share a key inside
// one page are read, and unique keys page as before.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import type { Source } from '../src/source/source.ts';
import { type SqlKey, sqlTable } from '../src/source/sql/sql-table.ts';
import { fixture, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

async function collect<R, P>(source: Source<R, P>, from?: P): Promise<R[]> {
  const records: R[] = [];
  for await (const item of source.read(from, { signal: new AbortController().signal })) records.push(item.record);
  return records;
}

type Exec = (statements: string[]) => Promise<void>;
const engines: Array<[string, () => Promise<{ url: string; exec: Exec } | string>]> = [
  [
    'SQLite',
    async () => {
      const path = join(tempDir('ckpt-key-unique-'), 'user.db');
      return {
        url: `sqlite:${path}`,
        exec: async (statements) => {
          const db = new DatabaseSync(path);
          for (const statement of statements) db.exec(statement);
          db.close();
        },
      };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const database = await freshDatabase('ckpt_key_unique');
      after(() => database.drop());
      return { url: database.url, exec: (statements) => withPool(database.url, async (pool) => void (await pool.query(statements.join(';\n')))) };
    },
  ],
  [
    'MySQL',
    async () => {
      const why = await mysqlSkip();
      if (why !== false) return why;
      const database = await freshMysqlDatabase('ckpt_key_unique');
      after(() => database.drop());
      return {
        url: database.url,
        exec: (statements) =>
          withMysqlPool(database.url, async (pool) => {
            for (const statement of statements) await pool.query(statement);
          }),
      };
    },
  ],
];

const people = (teams: string[]) => [
  'CREATE TABLE people (id INTEGER NOT NULL PRIMARY KEY, team VARCHAR(20) NOT NULL)',
  `INSERT INTO people (id, team) VALUES ${teams.map((team, index) => `(${index + 1}, '${team}')`).join(', ')}`,
];

for (const [name, makeEngine] of engines) {
  test(`sqlTable on ${name}: a key shared by rows where a page ends or a run resumes fails the read naming it; none is skipped silently`, async (t) => {
    const engine = await makeEngine();
    if (typeof engine === 'string') {
      t.skip(`MySQL: ${engine}`);
      return;
    }
    // Pages of 3: a, b, c | c, d, e — the second c sits past the first page's last key.
    await engine.exec(people(['a', 'b', 'c', 'c', 'd', 'e']));
    const byTeam = sqlTable<{ id: number; team: string }>({ connection: engine.url, table: 'people', key: 'team', pageSize: 3 });
    await assert.rejects(collect(byTeam), /sqlTable: the key \(team\) is not unique: 2 rows have team = "c"/);
    // A resume from a checkpoint between the two: the second c was skipped the same way.
    await assert.rejects(collect(byTeam, 'c'), /sqlTable: the key \(team\) is not unique: 2 rows have team = "c"/);
    // Rows sharing a key inside one page are all read; a unique key reads every row over any page size.
    const wide = sqlTable<{ id: number }>({ connection: engine.url, table: 'people', key: 'team', pageSize: 10 });
    assert.deepEqual((await collect(wide)).map((row) => Number(row.id)).sort(), [1, 2, 3, 4, 5, 6]);
    for (const pageSize of [1, 2, 3, 5]) {
      const byId: Source<{ id: number }, SqlKey> = sqlTable<{ id: number }>({ connection: engine.url, table: 'people', key: 'id', pageSize });
      assert.deepEqual(
        (await collect(byId)).map((row) => Number(row.id)),
        [1, 2, 3, 4, 5, 6],
      );
      assert.deepEqual(
        (await collect(byId, 3)).map((row) => Number(row.id)),
        [4, 5, 6],
      );
    }
    if (name === 'MySQL') {
      // MySQL's default collation: 'X' and 'x' are one key value to the database, though not to JavaScript.
      await engine.exec(['DROP TABLE people', ...people(['a', 'b', 'x', 'X', 'y'])]);
      await assert.rejects(collect(byTeam), /sqlTable: the key \(team\) is not unique: 2 rows have team = "[xX]"/);
    }
  });
}

test('ckpt run over a sqlTable whose key is not unique fails with one line naming it (exit 1); nothing is counted read that was not', async () => {
  const dir = tempDir('ckpt-key-unique-run-');
  const db = new DatabaseSync(join(dir, 'hr.db'));
  for (const statement of people(['a', 'b', 'c', 'c', 'd', 'e'])) db.exec(statement);
  db.close();
  const out = join(dir, 'read.out');
  const result = await runCli(['run', fixture('team-rows.ts'), '--store', `sqlite:${join(dir, 's.db')}`, '--param', `db=sqlite:${join(dir, 'hr.db')}`], {
    env: { TEAM_OUT: out },
  });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  // The failure line, then the run's summary lines, as every failed run ends; no stack.
  assert.match(result.stderr.split('\n')[0] ?? '', /^failed team-rows .*: sqlTable: the key \(team\) is not unique: 2 rows have team = "c"/);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
  const read = existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : [];
  assert.ok(!read.includes('5') && !read.includes('6'), 'rows past the duplicate were read as if it were not there');
});
