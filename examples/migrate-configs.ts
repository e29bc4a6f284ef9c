// Copy configuration rows from one database to another, reading the source by id in id order:
// the job this project's first user wrote by hand, saving "the last processed config id every
// 500 records" into a one-row-per-job table. Here the cursor is the checkpoint.
//
//   # checkpointed on MySQL (as the hand-written loop was), copied into SQLite or PostgreSQL:
//   ckpt run examples/migrate-configs.ts --store mysql://root@127.0.0.1/test \
//     --param from=mysql://root@127.0.0.1/test --param to=sqlite:.ckpt/configs.db --param seed=10000
//   # checkpointed on the target itself: rows and checkpoint commit together, exactly once
//   ckpt run examples/migrate-configs.ts --store postgres://u@host/db \
//     --param from=mysql://root@127.0.0.1/test --param to=store
//
// Params: `from`, a mysql:// URL of the source database; `to`, where the rows go: `store` (the
// store's own database, through ctx.tx), a `sqlite:PATH` or a `postgres://` URL; `table` (default
// `configs`), the same name on both sides; `seed=N` fills an empty source table with N demo rows.
//
// What is guaranteed depends on `to`, honestly:
// - `to=store`: each row is written through ctx.tx, in the transaction that commits the
//   checkpoint covering it. After any crash every row exists once and was written once (its
//   `writes` column is 1). On a MySQL store, create the target table first: MySQL commits DDL by
//   itself, so it cannot run inside the job's transaction.
// - any other target: the row is upserted on its own connection. A crash between that write and
//   the next checkpoint means the rows since the checkpoint are written again: the copy is exact
//   (one row per id, the source's values) but some rows were written twice (`writes` > 1).
//   Idempotent writes, not exactly-once ones.
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, type JobContext, type Source } from 'checkpointed';
import mysql from 'mysql2/promise';

interface ConfigRow {
  id: number;
  name: string;
  value: string;
}
type Params = { from: string; to: string; table: string; seed: number };
type Copied = { copied: number };

/** Rows per source query: one round trip per page, however the checkpoint interval is set. */
const PAGE = 500;
/** Rows per second at most, to watch (and interrupt) a run; not a param, so not identity. */
const pace = Number(process.env.CONFIGS_PACE ?? 0);
const startedAt = performance.now();
let written = 0;

/** The source table, read by id in id order from just after the checkpoint's id. */
function configsFrom(url: string, table: string, seed: number): Source<ConfigRow, number> {
  let pool: Promise<mysql.Pool> | undefined;
  const db = () =>
    (pool ??= (async () => {
      const created = mysql.createPool({ uri: url, connectionLimit: 2 });
      if (seed > 0) await seedConfigs(created, table, seed);
      return created;
    })());
  return {
    async *read(after, { signal }) {
      let last = after;
      while (!signal.aborted) {
        const [rows] = await (await db()).query<mysql.RowDataPacket[]>(
          last === undefined
            ? `SELECT id, name, value FROM ${table} ORDER BY id LIMIT ${PAGE}`
            : `SELECT id, name, value FROM ${table} WHERE id > ? ORDER BY id LIMIT ${PAGE}`,
          last === undefined ? [] : [last],
        );
        if (rows.length === 0) return;
        for (const row of rows) {
          last = Number(row.id);
          yield { position: last, record: { id: last, name: String(row.name), value: String(row.value) } };
        }
      }
    },
    async size() {
      const [rows] = await (await db()).query<mysql.RowDataPacket[]>(`SELECT count(*) AS n FROM ${table}`);
      return Number(rows[0]?.n);
    },
  };
}

/** Demo data: N configuration rows, written once into an empty table. */
async function seedConfigs(pool: mysql.Pool, table: string, count: number): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id BIGINT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(255) NOT NULL, value TEXT NOT NULL)`);
  const [rows] = await pool.query<mysql.RowDataPacket[]>(`SELECT count(*) AS n FROM ${table}`);
  if (Number(rows[0]?.n) > 0) return;
  for (let from = 1; from <= count; from += 1000) {
    const values = Array.from({ length: Math.min(1000, count - from + 1) }, (_, index) => {
      const id = from + index;
      return [id, `service-${id % 97}.setting-${id}`, JSON.stringify({ enabled: id % 3 !== 0, limit: (id * 7919) % 1000 })];
    });
    await pool.query(`INSERT INTO ${table} (id, name, value) VALUES ?`, [values]);
  }
}

/** The upsert of one row; `writes` counts how many times the row was written. */
function upsertSql(dialect: 'sqlite' | 'postgres' | 'mysql', table: string): string {
  if (dialect === 'mysql') {
    // VALUES(col): MySQL 8.0.20+ prefers a row alias, which MariaDB does not have.
    return `INSERT INTO ${table} (id, name, value, writes) VALUES (?, ?, ?, 1) ON DUPLICATE KEY UPDATE name = VALUES(name), value = VALUES(value), writes = writes + 1`;
  }
  const p = dialect === 'postgres' ? ['$1', '$2', '$3'] : ['?', '?', '?'];
  return `INSERT INTO ${table} (id, name, value, writes) VALUES (${p.join(', ')}, 1)
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, value = excluded.value, writes = ${table}.writes + 1`;
}

const createTarget = (table: string) =>
  `CREATE TABLE IF NOT EXISTS ${table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, value TEXT NOT NULL, writes INTEGER NOT NULL)`;

/** Writes a row outside the job's transaction: another database than the store's. */
type ExternalTarget = (row: ConfigRow) => Promise<void>;
let external: Promise<ExternalTarget> | undefined;

async function openTarget(to: string, table: string): Promise<ExternalTarget> {
  if (to.startsWith('sqlite:')) {
    const db = new DatabaseSync(to.slice('sqlite:'.length));
    // The busy timeout first: switching to WAL waits for readers of the file like any write.
    db.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL');
    db.exec(createTarget(table));
    const upsert = db.prepare(upsertSql('sqlite', table));
    return async (row) => {
      upsert.run(row.id, row.name, row.value);
    };
  }
  // pg is this example's optional driver: loaded only for a postgres:// target.
  const specifier = 'pg';
  const pg = (await import(specifier)) as {
    default: { Pool: new (config: object) => { query(sql: string, values?: unknown[]): Promise<unknown> } };
  };
  const pool = new pg.default.Pool({ connectionString: to, max: 2, allowExitOnIdle: true });
  await pool.query(createTarget(table));
  const upsert = upsertSql('postgres', table);
  return async (row) => {
    await pool.query(upsert, [row.id, row.name, row.value]);
  };
}

async function copy(row: ConfigRow, ctx: JobContext<Params, Copied>): Promise<void> {
  const { table, to } = ctx.params;
  if (to === 'store') {
    await ctx.tx.query(upsertSql(ctx.tx.dialect, table), [row.id, row.name, row.value]);
  } else {
    // Opened once per process; a failed open is not kept, so the next record tries again.
    external ??= openTarget(to, table).catch((error: unknown) => {
      external = undefined;
      throw error;
    });
    await (await external)(row);
  }
  ctx.state.copied++;
}

export default defineJob<ConfigRow, Params, Copied, number>({
  name: 'migrate-configs',
  params: (raw) => {
    const from = raw.from ?? process.env.CONFIGS_FROM;
    if (from === undefined || !from.startsWith('mysql://')) throw new Error('--param from=mysql://user:password@host/db names the source database');
    const to = raw.to ?? 'store';
    if (!(to === 'store' || to.startsWith('sqlite:') || /^postgres(ql)?:\/\//.test(to))) throw new Error('--param to= is store, sqlite:PATH or postgres://…');
    const table = raw.table ?? 'configs';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(table)) throw new Error(`table must be a plain SQL name (got ${JSON.stringify(table)})`);
    return { from, to, table, seed: Number(raw.seed ?? 0) };
  },
  // The URLs may carry passwords: identity uses their hash, logs show [redacted].
  redact: ['from', 'to'],
  source: ({ params }) => configsFrom(params.from, params.table, params.seed),
  async setup({ params, tx }) {
    // The target table, in the transaction of the first checkpoint. PostgreSQL and SQLite take
    // DDL inside a transaction; MySQL would commit it by itself, so there it is made beforehand.
    if (params.to === 'store' && tx.dialect !== 'mysql') await tx.query(createTarget(params.table));
  },
  initialState: () => ({ copied: 0 }),
  concurrency: 4,
  async process(row, ctx) {
    await copy(row, ctx);
    if (pace > 0) {
      written++;
      const due = startedAt + (written / pace) * 1000;
      if (due > performance.now()) await sleep(due - performance.now());
    }
  },
});
