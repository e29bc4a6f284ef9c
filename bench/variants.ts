// One measured run of one variant of one workload. run-all.ts starts each in a fresh process so
// that no variant inherits another's heap, caches or open connections.
import { DatabaseSync } from 'node:sqlite';
import { type CheckpointSpec, defineJob, type Job, openStore, range, runJob } from '../src/index.ts';
import type { Store } from '../src/store.ts';
import { type JournalTiming, timeJournal } from './journal-timing.ts';
import { concurrencyOf, digest, FakeApi, pool, type Workload, work, writesRows } from './workloads.ts';

export type Backend = 'sqlite' | 'postgres' | 'mysql';

export interface VariantInput {
  workload: Workload;
  variant: string;
  records: number;
  /** sqlite: a file path; postgres, mysql: a URL of a fresh database. */
  target: string;
  backend: Backend;
}

export interface VariantResult {
  ms: number;
  /** CPU time (user + system) of the process over the same span, where measured: on a shared machine, the part of `ms` that is ours. */
  cpuMs?: number;
  checkpoints?: number;
  overheadPct?: number;
  interval?: { ms: number | null; records: number | null; reason: string };
  policy?: string;
  /** (e)'s jobs: the journal's group commits timed during the run (journal-timing.ts). */
  journal?: JournalTiming;
  /** Why the cell has no number. */
  unavailable?: string;
}

/** The variants in the order the tables show them. */
export const variantNames: Record<string, string> = {
  plain: 'plain loop, no checkpoint',
  'plain-async': 'plain `for await` over the async source, no checkpoint',
  batched: 'plain batched inserts (500 rows), no checkpoint',
  'seed-1': 'seed pattern, offset saved every 1',
  'seed-500': 'seed pattern, every 500',
  'seed-10000': 'seed pattern, every 10,000',
  'ckpt-1': 'checkpointed every: 1',
  'ckpt-500': 'checkpointed every: 500',
  'ckpt-auto': "checkpointed 'auto'",
  'ckpt-async': "checkpointed 'auto', async process",
  'ckpt-query': "checkpointed 'auto', one ctx.tx.query per record",
  'batched-again': 'plain batched inserts (500 rows), second run in the same process',
  'ckpt-again': "checkpointed 'auto', second run in the same process",
  'dbos-step': 'DBOS, one step per record',
  'dbos-tx': 'DBOS, one transaction per record',
  'hand-c32': 'hand-written loop, 32 records in flight, no journal',
  'hand-c1': 'hand-written loop, one record at a time, no journal',
  'job-c32': "checkpointed 'auto', concurrency 32",
  'job-c1': "checkpointed 'auto', concurrency 1",
  'dbos-c32': 'DBOS, a workflow per record (two steps), 32 at once',
};

/** Records in flight of an (e) variant, from its name (`…-c32`). */
export const effectConcurrency = (variant: string): number => Number(variant.slice(variant.lastIndexOf('-c') + 2));

const outputTable = 'CREATE TABLE IF NOT EXISTS bench_out (id BIGINT PRIMARY KEY, digest TEXT NOT NULL)';

export async function runVariant(input: VariantInput): Promise<VariantResult> {
  const { variant } = input;
  if (input.workload === 'e') return variant.startsWith('dbos-') ? runPeer('dbos.ts', 'runDbosEffects', input) : effects(input);
  if (variant === 'plain') return writesRows(input.workload) ? plainRows(input, false) : plainLoop(input);
  if (variant === 'plain-async') return plainForAwait(input);
  if (variant === 'batched') return plainRows(input, true);
  // The same run measured a second time in its process, the first (on a store and table of its
  // own) having warmed the JIT: what a fresh process costs, beside the fresh-process figure.
  if (variant === 'batched-again') {
    await plainRows({ ...input, target: `${input.target}.first` }, true);
    return plainRows(input, true);
  }
  if (variant === 'ckpt-again') {
    await checkpointed({ ...input, target: `${input.target}.first` }, 'auto');
    return checkpointed(input, 'auto');
  }
  if (variant.startsWith('seed-')) return seedPattern(input, Number(variant.slice(5)));
  if (variant === 'ckpt-async') return checkpointed(input, 'auto', 'async');
  if (variant === 'ckpt-query') return checkpointed(input, 'auto', 'query');
  if (variant.startsWith('ckpt-')) {
    const every = variant.slice(5);
    return checkpointed(input, every === 'auto' ? 'auto' : { every: Number(every) });
  }
  if (variant.startsWith('dbos-')) return runPeer('dbos.ts', 'runDbos', input);
  throw new Error(`unknown variant ${variant}`);
}

async function runPeer(file: string, name: string, input: VariantInput): Promise<VariantResult> {
  const peer = (await importPeer(file)) as Record<string, (input: VariantInput) => Promise<VariantResult>>;
  return (peer[name] as (input: VariantInput) => Promise<VariantResult>)(input);
}

/**
 * (e): per record a `ctx.once` with `verify` and a `ctx.step`, each awaiting the fake API's 10 ms
 * call, through the effect journal; or the same two calls per record written by hand, with the
 * same records in flight and no journal (what a user would write instead).
 */
async function effects(input: VariantInput): Promise<VariantResult> {
  const concurrency = effectConcurrency(input.variant);
  const api = new FakeApi();
  if (input.variant.startsWith('hand-')) {
    const started = performance.now();
    await pool(input.records, concurrency, async (n) => {
      await api.call(`disable-${n}`);
      await api.call(`notify-${n}`);
    });
    return { ms: performance.now() - started };
  }
  const job = defineJob<number, unknown>({
    name: 'bench-e',
    source: () => range(0, input.records),
    concurrency,
    checkpoint: 'auto',
    async process(n: number, ctx) {
      const key = `disable-${n}`;
      await ctx.once(key, () => api.call(key), { verify: () => api.happened(key) });
      await ctx.step('notify', () => api.call(`notify-${n}`));
    },
  });
  const timing = timeJournal();
  const result = await runCheckpointed(input, job);
  if (!result.unavailable) result.journal = timing();
  if (!result.unavailable && api.calls.size !== 2 * input.records) throw new Error(`(e) made ${api.calls.size} calls, not ${2 * input.records}`);
  return result;
}

/** (a): the synchronous loop a user would write; (b): the same pool of awaited records as ours. */
async function plainLoop({ workload, records }: VariantInput): Promise<VariantResult> {
  const started = performance.now();
  if (workload === 'a') {
    let length = 0;
    for (let n = 0; n < records; n++) length += digest(n).length;
    if (length === 0) throw new Error('no work done');
  } else await pool(records, concurrencyOf(workload), (n) => work(workload, n));
  return { ms: performance.now() - started };
}

/** `for await` over the same source our async variant reads (range's async generator), awaiting the same work. */
async function plainForAwait({ workload, records }: VariantInput): Promise<VariantResult> {
  const started = performance.now();
  for await (const { record } of range(0, records).read(undefined, { signal: new AbortController().signal })) await work(workload, record);
  return { ms: performance.now() - started };
}

/**
 * Workload (c) with no checkpoint: one INSERT per record in one transaction for the whole run
 * (the fastest a loop can write, durable only at its end), or multi-row INSERTs of 500 rows.
 */
async function plainRows(input: VariantInput, batched: boolean): Promise<VariantResult> {
  const sql = await openSql(input);
  await sql.exec(outputTable);
  const started = performance.now();
  const cpu = process.cpuUsage();
  if (batched) {
    const batch = 500;
    for (let from = 0; from < input.records; from += batch) {
      const rows: unknown[] = [];
      for (let n = from; n < Math.min(input.records, from + batch); n++) rows.push(n, await work(input.workload, n));
      await sql.exec('BEGIN');
      await sql.run(`INSERT INTO bench_out (id, digest) VALUES ${placeholders(input.backend, rows.length / 2)}`, rows);
      await sql.exec('COMMIT');
    }
  } else {
    await sql.exec('BEGIN');
    for (let n = 0; n < input.records; n++) await sql.run(insertSql(input.backend), [n, await work(input.workload, n)]);
    await sql.exec('COMMIT');
  }
  const ms = performance.now() - started;
  const cpuMs = cpuSince(cpu);
  await sql.close();
  return { ms, cpuMs };
}

/**
 * The seed document's loop, ported as written: process(offset), and every N records upsert the
 * offset into a one-row-per-job table (SQLite, WAL, synchronous=FULL like our store). For
 * workload (c) the rows are written in a transaction that the offset save commits (autocommit
 * per row was 3 ms a record here, so this is the kinder port).
 */
async function seedPattern({ workload, records, target }: VariantInput, interval: number): Promise<VariantResult> {
  const db = new DatabaseSync(target);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS checkpoint (job_id TEXT PRIMARY KEY, position INTEGER NOT NULL)');
  db.exec(outputTable);
  const save = db.prepare('INSERT INTO checkpoint (job_id, position) VALUES (?, ?) ON CONFLICT (job_id) DO UPDATE SET position = excluded.position');
  const insert = db.prepare('INSERT INTO bench_out (id, digest) VALUES (?, ?)');
  const started = performance.now();
  if (writesRows(workload)) db.exec('BEGIN');
  const row = db.prepare('SELECT position FROM checkpoint WHERE job_id = ?').get('seed') as { position: number } | undefined;
  const startFrom = row === undefined ? 0 : row.position + 1;
  // With concurrency (workload b) the offset saved is the last one dispatched, as the loop knows
  // no better: records still in flight at a crash would be skipped. The seed has no answer to that.
  await pool(
    records - startFrom,
    concurrencyOf(workload),
    async (i) => {
      const result = await work(workload, startFrom + i);
      if (writesRows(workload)) insert.run(startFrom + i, result);
    },
    (i) => {
      const offset = startFrom + i;
      if (offset % interval === 0) {
        save.run('seed', offset);
        if (writesRows(workload)) db.exec('COMMIT; BEGIN');
      }
    },
  );
  db.prepare('DELETE FROM checkpoint WHERE job_id = ?').run('seed');
  if (writesRows(workload)) db.exec('COMMIT');
  const ms = performance.now() - started;
  db.close();
  return { ms };
}

async function checkpointed(input: VariantInput, checkpoint: CheckpointSpec, style: 'default' | 'async' | 'query' = 'default'): Promise<VariantResult> {
  const { workload, records, backend } = input;
  const rows = writesRows(workload);
  const insert = insertSql(backend);
  // (a) cheap records are synchronous work, so the job is synchronous (an async job is its own
  // variant); (c) writes its row buffered (`ctx.tx.insert`), or as one query per record.
  const job =
    workload === 'a' && style === 'default'
      ? defineJob<number, unknown>({
          name: 'bench-a',
          source: () => range(0, records),
          checkpoint,
          process(n: number) {
            digest(n);
          },
        })
      : defineJob<number, unknown>({
          name: `bench-${workload}`,
          source: () => range(0, records),
          concurrency: concurrencyOf(workload),
          checkpoint,
          async process(n: number, ctx) {
            const result = await work(workload, n);
            if (!rows) return;
            if (style === 'query') await ctx.tx.query(insert, [n, result]);
            else ctx.tx.insert('bench_out', { id: n, digest: result });
          },
        });
  return runCheckpointed(input, job);
}

/** Opens the variant's store (and (c)'s output table), runs `job` on it and reports the run. */
async function runCheckpointed(input: VariantInput, job: Job<number, unknown>): Promise<VariantResult> {
  const { workload, backend } = input;
  let store: Store;
  try {
    store = await openStore(backend === 'sqlite' ? sqliteUrl(input.target) : input.target);
  } catch (error) {
    return { ms: Number.NaN, unavailable: `not available yet (${String((error as Error).message).split('\n')[0]})` };
  }
  if (writesRows(workload)) {
    const sql = await openSql(input);
    await sql.exec(outputTable);
    await sql.close();
  }
  const started = performance.now();
  const cpu = process.cpuUsage();
  const summary = await runJob(job, { store });
  const ms = performance.now() - started;
  const cpuMs = cpuSince(cpu);
  await store.close();
  if (summary.outcome !== 'completed') throw new Error(`checkpointed run ended ${summary.outcome}: ${summary.error}`);
  return { ms, cpuMs, checkpoints: summary.checkpoints, overheadPct: summary.overheadPct, interval: summary.interval, policy: summary.policy };
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
}

const insertSql = (backend: Backend) =>
  backend === 'postgres' ? 'INSERT INTO bench_out (id, digest) VALUES ($1, $2)' : 'INSERT INTO bench_out (id, digest) VALUES (?, ?)';

function placeholders(backend: Backend, rows: number): string {
  const out: string[] = [];
  for (let i = 0; i < rows; i++) out.push(backend === 'postgres' ? `($${2 * i + 1}, $${2 * i + 2})` : '(?, ?)');
  return out.join(', ');
}

interface Sql {
  exec(sql: string): Promise<void>;
  run(sql: string, params: unknown[]): Promise<void>;
  close(): Promise<void>;
}

/** A bare connection for the variants that write without checkpointed. */
async function openSql({ backend, target }: VariantInput): Promise<Sql> {
  if (backend === 'sqlite') {
    const db = new DatabaseSync(target);
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL');
    const statements = new Map<string, ReturnType<DatabaseSync['prepare']>>();
    return {
      exec: async (sql) => db.exec(sql),
      run: async (sql, params) => {
        let statement = statements.get(sql);
        if (statement === undefined) {
          statement = db.prepare(sql);
          statements.set(sql, statement);
        }
        statement.run(...(params as (string | number)[]));
      },
      close: async () => db.close(),
    };
  }
  if (backend === 'mysql') {
    const { connectMysql } = (await importPeer('mysql-client.ts')) as { connectMysql: (url: string) => Promise<Sql> };
    return connectMysql(target);
  }
  const { connectPg } = (await importPeer('pg-client.ts')) as { connectPg: (url: string) => Promise<Sql> };
  return connectPg(target);
}

/**
 * Modules under peers/ use packages that only bench/ installs; they are loaded by a computed
 * name so that the library's type check (which covers bench/*.ts) never needs those packages.
 */
export function importPeer(file: string): Promise<unknown> {
  return import(new URL(`./peers/${file}`, import.meta.url).href);
}

/**
 * A bench child's SQLite target as a store URL: a path, or a URL already (run by hand with
 * `sqlite:/tmp/x.db`, a child once made `sqlite:sqlite:/tmp/x.db`, i.e. a folder named `sqlite:`).
 */
export function sqliteUrl(target: string): string {
  return target.startsWith('sqlite:') ? target : `sqlite:${target}`;
}
