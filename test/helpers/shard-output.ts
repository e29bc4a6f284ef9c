// Reading back what the sharded test job (fixtures/shard-job.ts) left in a store: its output rows
// and its run history, the same questions asked of a SQLite file, a PostgreSQL or a MySQL database.
import { DatabaseSync } from 'node:sqlite';
import { toResult } from '../../src/store/mysql/mysql-driver.ts';
import { mysqlRows, withMysqlPool } from './mysql.ts';
import { withPool } from './postgres.ts';

export interface OutputCheck {
  rows: number;
  /** (shard, n) pairs written more than once. */
  doubled: { shard: string; n: number; copies: number }[];
  /** Distinct (shard, n) pairs. */
  distinct: number;
}

export interface RunRow {
  shard: string;
  worker: string;
  outcome: string;
  id: number;
}

/** The store under test, seen from outside the workers. */
export interface ShardStoreProbe {
  url: string;
  sql: 'sqlite' | 'postgres' | 'mysql';
  createOutput(): Promise<void>;
  rowCount(): Promise<number>;
  output(): Promise<OutputCheck>;
  runs(): Promise<RunRow[]>;
  shardStatuses(): Promise<Record<string, number>>;
  /** Workers (host:pid) holding a lease on an unfinished shard right now. */
  holders(): Promise<string[]>;
}

const doubledSql = 'SELECT shard, n, count(*) AS copies FROM out GROUP BY shard, n HAVING count(*) <> 1 ORDER BY shard, n';
/** `out` is a reserved word on MySQL. */
const mysqlDoubledSql = doubledSql.replace('FROM out', 'FROM `out`');

export function sqliteProbe(path: string): ShardStoreProbe {
  const read = <T>(work: (db: DatabaseSync) => T): T => {
    const db = new DatabaseSync(path);
    try {
      db.exec('PRAGMA busy_timeout = 10000');
      return work(db);
    } finally {
      db.close();
    }
  };
  return {
    url: `sqlite:${path}`,
    sql: 'sqlite',
    async createOutput() {
      read((db) => db.exec('CREATE TABLE out (shard TEXT NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL)'));
    },
    async rowCount() {
      return read((db) => Number((db.prepare('SELECT count(*) AS c FROM out').get() as { c: number }).c));
    },
    async output() {
      return read((db) => ({
        rows: Number((db.prepare('SELECT count(*) AS c FROM out').get() as { c: number }).c),
        distinct: Number((db.prepare('SELECT count(*) AS c FROM (SELECT DISTINCT shard, n FROM out)').get() as { c: number }).c),
        doubled: db.prepare(doubledSql).all() as OutputCheck['doubled'],
      }));
    },
    async runs() {
      return read((db) => db.prepare('SELECT id, shard, worker, outcome FROM runs ORDER BY id').all() as unknown as RunRow[]);
    },
    async holders() {
      return read((db) =>
        (db.prepare("SELECT lease_owner FROM shards WHERE status = 'running' AND lease_owner IS NOT NULL").all() as { lease_owner: string }[]).map(
          (row) => row.lease_owner,
        ),
      );
    },
    async shardStatuses() {
      return read((db) =>
        Object.fromEntries(
          (db.prepare('SELECT status, count(*) AS c FROM shards GROUP BY status').all() as { status: string; c: number }[]).map((row) => [row.status, row.c]),
        ),
      );
    },
  };
}

/** `url` is the database; the store's tables live in `schema`, the job's `out` table in public. */
export function postgresProbe(url: string, schema: string): ShardStoreProbe {
  const storeUrl = `${url}${url.includes('?') ? '&' : '?'}schema=${schema}`;
  const one = async (sql: string) => withPool(url, async (pool) => (await pool.query(sql)).rows);
  return {
    url: storeUrl,
    sql: 'postgres',
    async createOutput() {
      await one('CREATE TABLE out (shard TEXT NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL)');
    },
    async rowCount() {
      return Number((await one('SELECT count(*) AS c FROM out'))[0]?.c);
    },
    async output() {
      return withPool(url, async (pool) => ({
        rows: Number((await pool.query('SELECT count(*) AS c FROM out')).rows[0]?.c),
        distinct: Number((await pool.query('SELECT count(*) AS c FROM (SELECT DISTINCT shard, n FROM out) d')).rows[0]?.c),
        doubled: (await pool.query(doubledSql)).rows.map((row) => ({ shard: String(row.shard), n: Number(row.n), copies: Number(row.copies) })),
      }));
    },
    async runs() {
      return (await one(`SELECT id, shard, worker, outcome FROM ${schema}.runs ORDER BY id`)).map((row) => ({
        id: Number(row.id),
        shard: String(row.shard),
        worker: String(row.worker),
        outcome: String(row.outcome),
      }));
    },
    async holders() {
      return (await one(`SELECT lease_owner FROM ${schema}.shards WHERE status = 'running' AND lease_owner IS NOT NULL`)).map((row) => String(row.lease_owner));
    },
    async shardStatuses() {
      return Object.fromEntries((await one(`SELECT status, count(*) AS c FROM ${schema}.shards GROUP BY status`)).map((row) => [row.status, Number(row.c)]));
    },
  };
}

/** `url` is the database; the store's tables are named `<prefix>…` in it, beside the job's `out` table. */
export function mysqlProbe(url: string, prefix: string): ShardStoreProbe {
  const storeUrl = `${url}${url.includes('?') ? '&' : '?'}prefix=${prefix}`;
  const one = (sql: string) => mysqlRows(url, sql);
  return {
    url: storeUrl,
    sql: 'mysql',
    async createOutput() {
      await one('CREATE TABLE `out` (shard VARCHAR(64) NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL)');
    },
    async rowCount() {
      return Number((await one('SELECT count(*) AS c FROM `out`'))[0]?.c);
    },
    async output() {
      return withMysqlPool(url, async (pool) => {
        const rows = async (sql: string) => toResult(await pool.query(sql)).rows;
        return {
          rows: Number((await rows('SELECT count(*) AS c FROM `out`'))[0]?.c),
          distinct: Number((await rows('SELECT count(*) AS c FROM (SELECT DISTINCT shard, n FROM `out`) d'))[0]?.c),
          doubled: (await rows(mysqlDoubledSql)).map((row) => ({ shard: String(row.shard), n: Number(row.n), copies: Number(row.copies) })),
        };
      });
    },
    async runs() {
      return (await one(`SELECT id, shard, worker, outcome FROM ${prefix}runs ORDER BY id`)).map((row) => ({
        id: Number(row.id),
        shard: String(row.shard),
        worker: String(row.worker),
        outcome: String(row.outcome),
      }));
    },
    async holders() {
      return (await one(`SELECT lease_owner FROM ${prefix}shards WHERE status = 'running' AND lease_owner IS NOT NULL`)).map((row) => String(row.lease_owner));
    },
    async shardStatuses() {
      return Object.fromEntries((await one(`SELECT status, count(*) AS c FROM ${prefix}shards GROUP BY status`)).map((row) => [row.status, Number(row.c)]));
    },
  };
}
