// sqlTable on PostgreSQL with a date or time key: the position is the value as the server wrote
// it, so the next page starts right after the last row. pg hands such values over as a Date,
// which loses what a Date cannot hold: a `timestamp` (no time zone) read in the process's zone,
// a `date` as its local midnight, microseconds cut to milliseconds. The position was that Date
// as ISO text, so in New York every page skipped the rows of the five hours after its last one
// (25 of 48 rows read), in Tokyo the position went back nine hours and the read never ended, and
// a `timestamptz` key with microseconds (as now() writes them) read each page's last row twice.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sqlTable } from '../src/source/sql/sql-table.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const skip = process.env.CKPT_TEST_DATABASE_URL === undefined && process.env.DATABASE_URL === undefined ? 'no PostgreSQL (run under npm test)' : false;

async function readIds(url: string, table: string, key: string | string[]): Promise<number[]> {
  const ids: number[] = [];
  for await (const item of sqlTable<{ id: number }>({ connection: url, table, key, pageSize: 5 }).read(undefined, { signal: new AbortController().signal })) {
    ids.push(item.record.id);
    if (ids.length > 500) break; // a read that goes back on itself would never end
  }
  return ids;
}

test('sqlTable on PostgreSQL: timestamp, date and timestamptz keys read every row once, whatever the process time zone', {
  skip,
  timeout: 60_000,
}, async () => {
  const database = await freshDatabase('ckpt_times');
  const zone = process.env.TZ;
  try {
    await withPool(database.url, (pool) =>
      pool.query(`
        CREATE TABLE at_hours (at timestamp PRIMARY KEY, id int NOT NULL);
        INSERT INTO at_hours SELECT timestamp '2024-01-01 00:00' + i * interval '1 hour', i FROM generate_series(0, 47) i;
        CREATE TABLE on_days (day date PRIMARY KEY, id int NOT NULL);
        INSERT INTO on_days SELECT date '2024-01-01' + i, i FROM generate_series(0, 47) i;
        CREATE TABLE micro (updated_at timestamptz NOT NULL, id int NOT NULL, PRIMARY KEY (updated_at, id));
        INSERT INTO micro SELECT timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1 second', i FROM generate_series(0, 47) i;`),
    );
    const all = [...Array(48).keys()];
    for (const tz of ['UTC', 'America/New_York', 'Asia/Tokyo']) {
      process.env.TZ = tz;
      assert.deepEqual(await readIds(database.url, 'at_hours', 'at'), all, `timestamp key, TZ=${tz}`);
      assert.deepEqual(await readIds(database.url, 'on_days', 'day'), all, `date key, TZ=${tz}`);
      assert.deepEqual(await readIds(database.url, 'micro', ['updated_at', 'id']), all, `timestamptz key with microseconds, TZ=${tz}`);
    }
    // Records keep what pg gives (a Date), the position is the server's text.
    process.env.TZ = 'UTC';
    const [first] = await (async () => {
      const items = [];
      for await (const item of sqlTable<{ at: unknown }>({ connection: database.url, table: 'at_hours', key: 'at', pageSize: 5 }).read(undefined, {
        signal: new AbortController().signal,
      })) {
        items.push(item);
        break;
      }
      return items;
    })();
    assert.ok(first?.record.at instanceof Date);
    assert.equal(first?.position, '2024-01-01 00:00:00');
    assert.deepEqual(Object.keys(first?.record ?? {}), ['at', 'id'], 'no column of ours in the record');
  } finally {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
    await database.drop();
  }
});
