// sqlTable runs one statement per read, whatever its where or query holds, on every database and
// with a URL or a ready client; and MySQL dates come back as the server wrote them, not shifted by
// the process's time zone.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import type { Source } from '../src/source/source.ts';
import type { MysqlQuerier, PgQuerier, SqlConnection } from '../src/source/sql/sql-client.ts';
import { sqlTable } from '../src/source/sql/sql-table.ts';
import { createMysqlPool } from '../src/store/mysql/mysql-driver.ts';
import { createPgPool } from '../src/store/postgres/postgres-driver.ts';
import { tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

async function collect<R, P>(source: Source<R, P>) {
  const items: { position: P; record: R }[] = [];
  for await (const item of source.read(undefined, { signal: new AbortController().signal })) items.push(item);
  return items;
}

interface Target {
  /** How the source connects: each URL form, and the driver's own client. */
  connections: Array<[string, () => Promise<{ connection: SqlConnection; close(): Promise<void> }>]>;
  victimsExist(): Promise<boolean>;
}

const setup = ['CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY)', 'INSERT INTO items (id) VALUES (1), (2), (3)', 'CREATE TABLE victims (id INTEGER)'];

const targets: Array<[string, () => Promise<Target | string>]> = [
  [
    'sqlite',
    async () => {
      const path = join(tempDir('ckpt-one-statement-'), 'user.db');
      const db = new DatabaseSync(path);
      for (const statement of setup) db.exec(statement);
      db.close();
      return {
        connections: [
          ['URL', async () => ({ connection: `sqlite:${path}`, close: async () => undefined })],
          [
            'client',
            async () => {
              const client = new DatabaseSync(path);
              return { connection: { sqlite: client }, close: async () => client.close() };
            },
          ],
        ],
        async victimsExist() {
          const check = new DatabaseSync(path);
          const found = check.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'victims'").get();
          check.close();
          return Number(found?.n) === 1;
        },
      };
    },
  ],
  [
    'postgres',
    async () => {
      const database = await freshDatabase('ckpt_one_stmt');
      after(() => database.drop());
      await withPool(database.url, async (pool) => void (await pool.query(setup.join(';\n'))));
      return {
        connections: [
          ['URL', async () => ({ connection: database.url, close: async () => undefined })],
          [
            'client',
            async () => {
              const pool = await createPgPool({ connectionString: database.url, max: 1 });
              return { connection: { postgres: pool as unknown as PgQuerier }, close: () => pool.end() };
            },
          ],
        ],
        victimsExist: () => withPool(database.url, async (pool) => (await pool.query("SELECT to_regclass('victims') AS t")).rows[0]?.t !== null),
      };
    },
  ],
  [
    'mysql',
    async () => {
      const why = await mysqlSkip();
      if (why !== false) return why;
      const database = await freshMysqlDatabase('ckpt_one_stmt');
      after(() => database.drop());
      await withMysqlPool(database.url, async (pool) => {
        for (const statement of setup) await pool.query(statement);
      });
      const withOption = new URL(database.url);
      withOption.searchParams.set('multipleStatements', 'true');
      return {
        connections: [
          ['URL', async () => ({ connection: database.url, close: async () => undefined })],
          ['URL with multipleStatements=true', async () => ({ connection: withOption.href, close: async () => undefined })],
          [
            'client',
            async () => {
              const pool = await createMysqlPool({ url: withOption.href, max: 1 });
              return { connection: { mysql: pool as unknown as MysqlQuerier }, close: () => pool.end() };
            },
          ],
        ],
        victimsExist: async () =>
          (await mysqlRows(database.url, "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'victims'"))[0]
            ?.n === 1,
      };
    },
  ],
];

for (const [name, makeTarget] of targets) {
  test(`sqlTable runs one statement: a where or query holding a second one fails and drops nothing (${name})`, async (t) => {
    const target = await makeTarget();
    if (typeof target === 'string') {
      t.skip(`MySQL: ${target}`);
      return;
    }
    for (const [how, open] of target.connections) {
      const { connection, close } = await open();
      try {
        // A plain filter with no params still reads.
        assert.equal((await collect(sqlTable({ connection, table: 'items', key: 'id', where: 'id > 1' }))).length, 2, `${how}: a plain where reads`);
        const attacks = [
          sqlTable({ connection, table: 'items', key: 'id', where: '1=1); DROP TABLE victims; SELECT (1' }),
          sqlTable({ connection, query: 'SELECT id FROM items; DROP TABLE victims; SELECT 1 AS id', key: 'id' }),
        ];
        for (const source of attacks) {
          await assert.rejects(collect(source), `${how}: a second statement is refused`);
          await assert.rejects(async () => source.size?.(), `${how}: size() too`);
          await assert.rejects(async () => source.fingerprint?.(), `${how}: fingerprint() too`);
          assert.equal(await target.victimsExist(), true, `${how}: the victims table is still there`);
        }
      } finally {
        await close();
      }
    }
  });
}

test('sqlTable on MySQL: DATETIME values come as the server holds them, unshifted by TZ; a URL timezone sets the session zone', async (t) => {
  const why = await mysqlSkip();
  if (why !== false) return t.skip(`MySQL: ${why}`);
  const database = await freshMysqlDatabase('ckpt_dates');
  after(() => database.drop());
  await withMysqlPool(database.url, async (pool) => {
    await pool.query('CREATE TABLE stamps (at DATETIME NOT NULL PRIMARY KEY, seen TIMESTAMP NULL)');
    // 02:30 on 2024-03-10 does not exist in New York (the clocks jump from 02:00 to 03:00).
    await pool.query("SET time_zone = '+00:00'");
    await pool.query("INSERT INTO stamps (at, seen) VALUES ('2024-03-10 02:30:00', '2024-03-10 02:30:00'), ('2024-03-10 04:00:00', NULL)");
  });
  const zone = process.env.TZ;
  process.env.TZ = 'America/New_York';
  try {
    const rows = await collect(sqlTable<{ at: unknown; seen: unknown }>({ connection: database.url, table: 'stamps', key: 'at', columns: ['at'] }));
    assert.deepEqual(
      rows.map((row) => row.record.at),
      ['2024-03-10 02:30:00', '2024-03-10 04:00:00'],
    );
    assert.deepEqual(
      rows.map((row) => row.position),
      ['2024-03-10 02:30:00', '2024-03-10 04:00:00'],
    );
    const url = new URL(database.url);
    url.searchParams.set('timezone', '+02:00');
    const [zoned] = await collect(sqlTable<{ at: unknown; seen: unknown }>({ connection: url.href, table: 'stamps', key: 'at' }));
    assert.equal(zoned?.record.at, '2024-03-10 02:30:00', 'a DATETIME has no zone to convert');
    assert.equal(zoned?.record.seen, '2024-03-10 04:30:00', 'a TIMESTAMP is given in the URL’s zone');
  } finally {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  }
});
