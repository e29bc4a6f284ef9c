// sqlTable on every database it reads: pages seek past the last key (gaps, composite keys), a
// resume from any position gives exactly the rest, size() counts, fingerprint() sees a changed
// table, and each read closes the connection it opened.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import type { Source } from '../src/source/source.ts';
import { pageStatement } from '../src/source/sql/keyset-sql.ts';
import type { MysqlQuerier, PgQuerier, SqlConnection } from '../src/source/sql/sql-client.ts';
import { sqlTable } from '../src/source/sql/sql-table.ts';
import { createMysqlPool } from '../src/store/mysql/mysql-driver.ts';
import { createPgPool } from '../src/store/postgres/postgres-driver.ts';
import { repoRoot, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip, withMysqlPool } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

interface Engine {
  name: string;
  url: string;
  exec(statements: string[]): Promise<void>;
  /** Connections open on the server now (PostgreSQL, MySQL); undefined where there is no server. */
  connections(): Promise<number | undefined>;
}

async function collect<R, P>(source: Source<R, P>, from?: P) {
  const items: { position: P; record: R }[] = [];
  for await (const item of source.read(from, { signal: new AbortController().signal })) items.push(item);
  return items;
}

// Keys with gaps (every third id, some runs missing) and a composite key over (tenant, seq).
const ids = Array.from({ length: 200 }, (_, i) => i * 3 + (i > 100 ? 1000 : 0)).filter((id) => id % 7 !== 0);
const events = ['acme', 'beta', 'zeta'].flatMap((tenant) => Array.from({ length: 40 }, (_, i) => [tenant, i * 5 + (tenant === 'beta' ? 2 : 0)] as const));

function setupSql(dialect: 'sqlite' | 'postgres' | 'mysql'): string[] {
  const text = dialect === 'mysql' ? 'VARCHAR(40)' : 'TEXT';
  return [
    `CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY, name ${text} NOT NULL)`,
    `INSERT INTO items (id, name) VALUES ${ids.map((id) => `(${id}, 'item ${id}')`).join(', ')}`,
    `CREATE TABLE events (tenant ${text} NOT NULL, seq INTEGER NOT NULL, body ${text}, PRIMARY KEY (tenant, seq))`,
    `INSERT INTO events (tenant, seq, body) VALUES ${events.map(([tenant, seq]) => `('${tenant}', ${seq}, 'e')`).join(', ')}`,
  ];
}

const engines: Array<[string, () => Promise<Engine | string>]> = [
  [
    'sqlite',
    async () => {
      const path = join(tempDir('ckpt-keyset-'), 'user.db');
      return {
        name: 'sqlite',
        url: `sqlite:${path}`,
        async exec(statements) {
          const db = new DatabaseSync(path);
          for (const statement of statements) db.exec(statement);
          db.close();
        },
        connections: async () => undefined,
      };
    },
  ],
  [
    'postgres',
    async () => {
      const database = await freshDatabase('ckpt_keyset');
      after(() => database.drop());
      const dbName = new URL(database.url).pathname.slice(1);
      return {
        name: 'postgres',
        url: database.url,
        exec: (statements) => withPool(database.url, async (pool) => void (await pool.query(statements.join(';\n')))),
        connections: () =>
          withPool(database.url, async (pool) => {
            const result = await pool.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [dbName]);
            return Number(result.rows[0]?.n);
          }),
      };
    },
  ],
  [
    'mysql',
    async () => {
      const why = await mysqlSkip();
      if (why !== false) return why;
      const database = await freshMysqlDatabase('ckpt_keyset');
      after(() => database.drop());
      const dbName = new URL(database.url).pathname.slice(1);
      return {
        name: 'mysql',
        url: database.url,
        exec: (statements) =>
          withMysqlPool(database.url, async (pool) => {
            for (const statement of statements) await pool.query(statement);
          }),
        connections: async () => {
          const rows = await mysqlRows(database.url, 'SELECT count(*) AS n FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()', [
            dbName,
          ]);
          return Number(rows[0]?.n);
        },
      };
    },
  ],
];

/** The engine's own driver object, as a user would hand it in (the store's pool types declare only what the store calls). */
async function readyClient(engine: Engine): Promise<{ connection: SqlConnection; close(): Promise<void> }> {
  if (engine.name === 'sqlite') {
    const db = new DatabaseSync(engine.url.slice('sqlite:'.length));
    return { connection: { sqlite: db }, close: async () => db.close() };
  }
  if (engine.name === 'postgres') {
    const pool = await createPgPool({ connectionString: engine.url, max: 2 });
    return { connection: { postgres: pool as unknown as PgQuerier }, close: () => pool.end() };
  }
  const pool = await createMysqlPool({ url: engine.url, max: 2 });
  return { connection: { mysql: pool as unknown as MysqlQuerier }, close: () => pool.end() };
}

for (const [engineName, makeEngine] of engines) {
  test(`sqlTable: seeks by key, resumes anywhere, counts, fingerprints and closes (${engineName})`, async (t) => {
    const engine = await makeEngine();
    if (typeof engine === 'string') {
      t.skip(`MySQL: ${engine}`);
      return;
    }
    await engine.exec(setupSql(engine.name as 'sqlite'));
    // A server counts a closed connection until its backend has exited: poll for the expected count.
    const connectionsBecome = async (expected: number | undefined) => {
      let seen = await engine.connections();
      for (let waited = 0; seen !== expected && waited < 5000; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        seen = await engine.connections();
      }
      assert.equal(seen, expected, 'connections open on the server');
    };
    const baseline = engine.name === 'sqlite' ? undefined : 0;
    await connectionsBecome(baseline);

    // Single key with gaps, small pages so page boundaries fall everywhere.
    const items = sqlTable<{ id: number; name: string }>({ connection: engine.url, table: 'items', key: 'id', pageSize: 7 });
    const all = await collect(items);
    assert.deepEqual(
      all.map((item) => item.position),
      ids,
    );
    assert.deepEqual({ ...all[3]?.record }, { id: ids[3], name: `item ${ids[3]}` });
    for (const at of [0, 6, 7, 50, ids.length - 2, ids.length - 1]) {
      const rest = await collect(items, all[at]?.position);
      assert.deepEqual(
        rest.map((item) => item.position),
        ids.slice(at + 1),
        `resume after ${all[at]?.position}`,
      );
    }
    assert.equal(await items.size?.(), ids.length);

    // Composite key: the position is [tenant, seq]; a resume from a position between rows works too.
    const byTenant = sqlTable({ connection: engine.url, table: 'events', key: ['tenant', 'seq'], columns: ['tenant', 'seq'], pageSize: 9 });
    const expected = [...events].sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] < b[0] ? -1 : 1)).map(([tenant, seq]) => [tenant, seq]);
    assert.deepEqual(
      (await collect(byTenant)).map((item) => item.position),
      expected,
    );
    assert.deepEqual(
      (await collect(byTenant, ['beta', 3])).map((item) => item.position),
      expected.filter(([tenant, seq]) => tenant === 'zeta' || (tenant === 'beta' && (seq as number) > 3)),
    );

    // A query with a filter and its own placeholders.
    const placeholder = engine.name === 'postgres' ? '$1' : '?';
    const filtered = sqlTable({
      connection: engine.url,
      query: 'SELECT tenant, seq, body FROM events',
      where: `tenant = ${placeholder}`,
      params: ['beta'],
      key: ['tenant', 'seq'],
      pageSize: 4,
    });
    assert.equal((await collect(filtered)).length, 40);
    assert.equal(await filtered.size?.(), 40);

    // Fingerprint: stable while the table is, changed by an append or a delete; 'shape' ignores rows.
    const before = await items.fingerprint?.();
    assert.equal(await items.fingerprint?.(), before);
    const shapeOnly = sqlTable({ connection: engine.url, table: 'items', key: 'id', fingerprint: 'shape' });
    const shapeBefore = await shapeOnly.fingerprint?.();
    await engine.exec(["INSERT INTO items (id, name) VALUES (100000, 'late')"]);
    const appended = await items.fingerprint?.();
    assert.notEqual(appended, before);
    await engine.exec([`DELETE FROM items WHERE id = ${ids[10]}`]);
    assert.notEqual(await items.fingerprint?.(), appended);
    assert.equal(await shapeOnly.fingerprint?.(), shapeBefore);

    // Stopping early (the runner's return()) and finishing both close the connection.
    const iterator = items.read(undefined, { signal: new AbortController().signal })[Symbol.asyncIterator]();
    await iterator.next();
    if (baseline !== undefined) await connectionsBecome(baseline + 1);
    await iterator.return?.();
    await connectionsBecome(baseline);

    // A ready client reads the same rows and is left open for its owner.
    const borrowed = await readyClient(engine);
    try {
      const viaClient = sqlTable({ connection: borrowed.connection, table: 'items', key: 'id', pageSize: 50 });
      assert.deepEqual(
        (await collect(viaClient)).map((item) => item.position),
        (await collect(items)).map((item) => item.position),
      );
      assert.equal(await viaClient.size?.(), await items.size?.());
      assert.equal((await collect(viaClient)).length > 0, true, 'the client still works after a read');
    } finally {
      await borrowed.close();
    }
  });
}

for (const [engineName, makeEngine] of engines) {
  test(`sqlTable: a 64-bit integer key beyond 2^53 is read exact, as text, and pages and resumes by it (${engineName})`, async (t) => {
    const engine = await makeEngine();
    if (typeof engine === 'string') {
      t.skip(`MySQL: ${engine}`);
      return;
    }
    // Snowflake-style ids: neighbours a number cannot tell apart (2^60 + n rounds to 2^60).
    const big = Array.from({ length: 5 }, (_, n) => (2n ** 60n + BigInt(n)).toString());
    await engine.exec([
      `CREATE TABLE events (id BIGINT NOT NULL PRIMARY KEY, small BIGINT NOT NULL)`,
      `INSERT INTO events (id, small) VALUES ${big.map((id, n) => `(${id}, ${n})`).join(', ')}`,
    ]);
    const source = sqlTable<{ id: string; small: number }>({ connection: engine.url, table: 'events', key: 'id', pageSize: 2 });
    // At most 20: a key rounded to its neighbour's would page the same rows for ever.
    const all: { position: unknown; record: { id: string; small: number } }[] = [];
    for await (const item of source.read(undefined, { signal: new AbortController().signal })) {
      all.push(item);
      if (all.length === 20) break;
    }
    assert.deepEqual(
      all.map((item) => item.position),
      big,
    );
    assert.deepEqual(
      all.map((item) => [String(item.record.id), Number(item.record.small)]),
      big.map((id, n) => [id, n]),
    );
    assert.deepEqual(
      (await collect(source, big[1])).map((item) => item.position),
      big.slice(2),
    );
    if (engine.name !== 'postgres') {
      assert.equal(typeof all[0]?.record.small, 'number', 'a value a number holds exactly stays a number');
    }
  });
}

test('sqlTable: the page query seeks (row values, or the OR form on MySQL), never OFFSET', () => {
  const shape = { from: '"t"', columns: '*', key: ['a', 'b'], params: [] };
  const pg = pageStatement({ ...shape, dialect: 'postgres', where: 'x = $1', params: [5] }, [1, 2], 10);
  assert.equal(
    pg.sql,
    'SELECT *, "a"::text AS "ckpt$key_text_0", "b"::text AS "ckpt$key_text_1", ("a" = $4 AND "b" = $5) AS "ckpt$at_last" FROM "t" WHERE (x = $1) AND ("a", "b") >= ($2, $3) ORDER BY "a", "b" LIMIT 11',
  );
  assert.deepEqual(pg.params, [5, 1, 2, 1, 2]);
  // From the last key on, the rows equal to it flagged (test/sql-key-unique.test.ts); positional
  // placeholders take the select list's values first.
  const my = pageStatement({ ...shape, from: '`t`', dialect: 'mysql' }, [1, 2], 10);
  assert.equal(
    my.sql,
    'SELECT *, (`a` = ? AND `b` = ?) AS `ckpt$at_last` FROM `t` WHERE `a` >= ? AND (`a` > ? OR (`a` = ? AND (`b` >= ?))) ORDER BY `a`, `b` LIMIT 11',
  );
  assert.deepEqual(my.params, [1, 2, 1, 1, 1, 2]);
  assert.doesNotMatch(pageStatement({ ...shape, dialect: 'sqlite' }, undefined, 3).sql, /OFFSET/);
  assert.throws(() => sqlTable({ connection: 'sqlite:x.db', table: 't"; DROP TABLE t; --', key: 'id' }), /not a usable SQL name/);
  assert.throws(() => sqlTable({ connection: 'oracle://x', table: 't', key: 'id' }), /must start sqlite:, postgres:\/\/ or mysql:\/\//);
});

test("import 'checkpointed' loads no database driver: pg, mysql2 and the stream clients come in only when a source or store needs them, csv-parse only when a CSV source reads", () => {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ resolve(specifier, context, next) { if (/^(pg|mysql2|redis|@redis|@nats-io|csv-parse)(\\/|$)/.test(specifier)) loaded.push(specifier); return next(specifier, context); } });
    const api = await import(${JSON.stringify(join(repoRoot, 'src', 'index.ts'))});
    api.sqlTable({ connection: 'postgres://nowhere/db', table: 't', key: 'id' });
    api.sqlTable({ connection: 'mysql://nowhere/db', table: 't', key: 'id' });
    api.redisStream({ url: 'redis://nowhere', stream: 's', group: 'g' });
    api.jetStream({ servers: 'nowhere:4222', stream: 'S' });
    api.csvFile('nowhere.csv');
    console.log(JSON.stringify(loaded));`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), '[]');
});
