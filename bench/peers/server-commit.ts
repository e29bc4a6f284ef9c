// The smallest durable commit on a server store, for the commit floor (bench/commit-floor.ts):
// one single-row INSERT in its own (autocommit) transaction on a table of its own, one at a time,
// through the driver the store uses (pg with a prepared statement, as the journal's fast way;
// mysql2's text protocol, as the MySQL store sends), in the database given.
import { createRequire } from 'node:module';

export interface CommitSamples {
  samplesMs: number[];
  /** The server's durability setting the commits ran under. */
  setting: string;
}

const table = 'CREATE TABLE commit_floor (id BIGINT PRIMARY KEY, at BIGINT NOT NULL)';

export async function postgresCommits(url: string, warmup: number, count: number): Promise<CommitSamples> {
  const pg = createRequire(import.meta.url)('pg') as typeof import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(table);
    const setting = (await client.query('SHOW synchronous_commit')).rows[0]?.synchronous_commit as string;
    const samplesMs: number[] = [];
    for (let id = 0; id < warmup + count; id++) {
      const started = performance.now();
      await client.query({ name: 'commit-floor', text: 'INSERT INTO commit_floor (id, at) VALUES ($1, $2)', values: [id, Date.now()] });
      if (id >= warmup) samplesMs.push(performance.now() - started);
    }
    return { samplesMs, setting: `synchronous_commit = ${setting}` };
  } finally {
    await client.end();
  }
}

export async function mysqlCommits(url: string, warmup: number, count: number): Promise<CommitSamples> {
  const mysql = createRequire(import.meta.url)('mysql2/promise') as typeof import('mysql2/promise');
  const connection = await mysql.createConnection({ uri: url });
  try {
    await connection.query(table);
    const [rows] = (await connection.query('SELECT @@innodb_flush_log_at_trx_commit AS flush, @@autocommit AS autocommit')) as unknown as [
      { flush: number; autocommit: number }[],
    ];
    const samplesMs: number[] = [];
    for (let id = 0; id < warmup + count; id++) {
      const started = performance.now();
      await connection.query('INSERT INTO commit_floor (id, at) VALUES (?, ?)', [id, Date.now()]);
      if (id >= warmup) samplesMs.push(performance.now() - started);
    }
    return { samplesMs, setting: `innodb_flush_log_at_trx_commit = ${rows[0]?.flush}, autocommit = ${rows[0]?.autocommit}` };
  } finally {
    await connection.end();
  }
}
