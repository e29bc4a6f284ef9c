// Where a journal batch's time goes on PostgreSQL, for issue 18: each batch split into the client's
// work before the statement is written (chain hashes, JSON, arrays, pg's serialising), the time
// from the write to the first bytes of the answer read by the event loop (the server's work, the
// commit, and the wait for the loop to read), from those bytes to pg's callback (parsing), and
// from there to the journal's promise settling as the queue sees it.
//   node bench/journal-split.ts job <records> [concurrency]     one (e) run, as the bench runs it
//   node bench/journal-split.ts quiet <batches> [claims]        batches of `claims` claims and as
//                                                               many completions, one at a time,
//                                                               in a process doing nothing else
// PostgreSQL: $DATABASE_URL's server (a fresh database), else an embedded one (peers/postgres.ts).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createRequire } from 'node:module';
import { openStore } from '../src/index.ts';
import type { JournalWrite } from '../src/store/store.ts';
import { aroundJournal } from './journal-timing.ts';
import { importPeer, runVariant } from './variants.ts';

const mode = process.argv[2] === 'quiet' ? 'quiet' : 'job';
const count = Number(process.argv[3] ?? (mode === 'job' ? 2000 : 300));
const width = Number(process.argv[4] ?? (mode === 'job' ? 32 : 8));

interface Split {
  started: number;
  sent?: number;
  written?: number;
  answered?: number;
  parsed?: number;
  settled?: number;
  /** SPLIT_SERVER_CLOCK=1: the statement's start and the end of its execution on the server, on this process's clock. */
  serverStart?: number;
  serverEnd?: number;
  writes: number;
}
const splits: Split[] = [];
let current: Split | undefined;

// The store's own pg (the root's node_modules), not the bench's.
const pg = createRequire(new URL('../src/store/postgres/', import.meta.url))('pg') as {
  Client: {
    new (config: {
      connectionString: string;
    }): {
      connect(): Promise<void>;
      query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
      end(): Promise<void>;
    };
    prototype: { query: (...args: unknown[]) => unknown };
  };
};
/** Set for the quiet run's last batch: its statement is explained (analyzed, rolled back) before it is sent. */
let explainNext: string | undefined;
const query = pg.Client.prototype.query;
const watched = new WeakSet<object>();
const executions = new WeakMap<object, number>();
/** SPLIT_COUNT=1: every statement the store's pg sends, by its first words. */
const statements = new Map<string, number>();
pg.Client.prototype.query = function (this: { connection: { stream: NodeJS.EventEmitter } }, ...args: unknown[]) {
  const config = args[0] as { name?: string } | undefined;
  const split = current;
  if (process.env.SPLIT_COUNT === '1') {
    const text = typeof config === 'string' ? config : String((config as { text?: string } | undefined)?.text ?? '');
    const shape = text.replace(/\s+/g, ' ').slice(0, 70);
    statements.set(shape, (statements.get(shape) ?? 0) + 1);
  }
  if (split === undefined || typeof config !== 'object' || !config?.name?.startsWith('ckpt_journal_')) return query.apply(this, args);
  const stream = this.connection.stream;
  if (!watched.has(stream)) {
    watched.add(stream);
    stream.prependListener('data', () => {
      const waiting = (stream as unknown as { split?: Split }).split;
      if (waiting !== undefined && waiting.answered === undefined) waiting.answered = performance.now();
    });
  }
  if (process.env.SPLIT_SERVER_CLOCK === '1') {
    // The server's own times: the statement's start, and the end of its execution (every CTE read first), before its commit.
    const named = config as { name: string; text: string };
    named.text = named.text.replace(
      / AS (moved|claimed)$/,
      ' AS $1, (SELECT count(*) FROM done) + (SELECT count(*) FROM added) + (SELECT count(*) FROM failed) AS n, ' +
        'extract(epoch from statement_timestamp()) * 1000 AS st, extract(epoch from clock_timestamp()) * 1000 AS ct',
    );
    named.name = `${named.name}_clock`;
  }
  (stream as unknown as { split?: Split }).split = split;
  // How the server plans the prepared statement: after its 50th run on a connection, ask it.
  const runs = (executions.get(this) ?? 0) + 1;
  executions.set(this, runs);
  if (runs === 50)
    void (query.call(this, 'SELECT name, generic_plans, custom_plans FROM pg_prepared_statements') as Promise<{ rows: unknown[] }>).then((result) =>
      process.stdout.write(`plans after 50 runs on a connection: ${JSON.stringify(result.rows)}\n`),
    );
  split.sent = performance.now();
  const callback = args.at(-1);
  if (explainNext !== undefined && typeof callback === 'function') {
    const explained = explainNext;
    explainNext = undefined;
    const { text, values } = config as { text: string; values: unknown[] };
    void explain(explained, text, values).then(() => query.apply(this, args));
    return undefined;
  }
  if (typeof callback === 'function') {
    args[args.length - 1] = (...results: unknown[]) => {
      split.parsed = performance.now();
      const row = (results[1] as { rows?: Record<string, unknown>[] } | undefined)?.rows?.[0];
      if (row?.ct !== undefined) {
        split.serverStart = Number(row.st) - performance.timeOrigin;
        split.serverEnd = Number(row.ct) - performance.timeOrigin;
      }
      (stream as unknown as { split?: Split }).split = undefined;
      return callback(...results);
    };
  }
  const result = query.apply(this, args);
  split.written = performance.now();
  return result;
};

async function explain(url: string, text: string, values: unknown[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const show = (title: string, rows: Record<string, unknown>[]) =>
    process.stdout.write(`--- ${title}\n${rows.map((row) => String(row['QUERY PLAN'])).join('\n')}\n`);
  for (let i = 0; i < 3; i++) {
    await client.query('BEGIN');
    show(`EXPLAIN ANALYZE, run ${i + 1}`, (await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, values)).rows);
    await client.query('ROLLBACK');
  }
  show('generic plan', (await client.query(`EXPLAIN (GENERIC_PLAN) ${text}`)).rows);
  process.stdout.write(`--- ${values.length} parameters, text ${text.length} chars\n`);
  await client.end();
}

aroundJournal(async (writes, batch) => {
  const split: Split = { started: performance.now(), writes };
  current = split;
  try {
    return await batch();
  } finally {
    split.settled = performance.now();
    if (current === split) current = undefined;
    splits.push(split);
  }
});

const { startPostgres } = (await importPeer('postgres.ts')) as {
  startPostgres(log: (line: string) => void): Promise<{ database(name: string): Promise<string>; stop(): Promise<void> }>;
};
const postgres = await startPostgres(() => undefined);
const url = await postgres.database(`ckpt_split_${process.pid}`);
// SPLIT_PROF=out.cpuprofile: a CPU profile of the measured span (100 µs sampling), its top self times printed.
const profileTo = process.env.SPLIT_PROF;
const session = profileTo === undefined ? undefined : new Session();
if (session !== undefined) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
/** The server's WAL statistics (its syncs timed where the session has track_wal_io_timing on: PGOPTIONS='-c track_wal_io_timing=on'). */
let walFrom: string | undefined;
async function walStats(): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const row = (await client.query('SELECT wal_records, wal_bytes, wal_fpi, wal_write, wal_sync, wal_write_time, wal_sync_time FROM pg_stat_wal')).rows[0] ?? {};
  if (process.env.SPLIT_WAL === '1') {
    // Which kinds of WAL record the span wrote (pg_walinspect, where the server has it).
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
    const lsn = String((await client.query('SELECT pg_current_wal_lsn() AS lsn')).rows[0]?.lsn);
    if (walFrom === undefined) walFrom = lsn;
    else {
      const kinds = await client.query(
        `SELECT "resource_manager/record_type" AS kind, count, record_size, fpi_size FROM pg_get_wal_stats($1, $2, true) WHERE count > 0 ORDER BY record_size + fpi_size DESC LIMIT 14`,
        [walFrom, lsn],
      );
      for (const kind of kinds.rows) process.stdout.write(`  ${JSON.stringify(kind)}\n`);
    }
  }
  await client.end();
  return Object.fromEntries(Object.entries(row).map(([key, value]) => [key, Number(value)]));
}
const walBefore = await walStats();
const cpu = process.cpuUsage();
const elu = performance.eventLoopUtilization();
const wall = performance.now();
if (mode === 'job') {
  const result = await runVariant({ workload: 'e', variant: `job-c${width}`, records: count, backend: 'postgres', target: url });
  const wait = result.journal?.intentWaitMs;
  process.stdout.write(
    `job-c${width} ${count} records: ${result.ms.toFixed(0)} ms; wait per intent mean ${wait?.mean.toFixed(3)} ms (median ${wait?.median.toFixed(3)} ms)\n`,
  );
} else {
  const store = await openStore(url);
  const instance = await store.instance('split', 'split', { params: {}, version: null });
  await store.ensureShards(instance, ['main'], { version: null });
  const lease = await store.claim(instance, 'worker', 60_000);
  if (!lease) throw new Error('no lease');
  const fence = { shardId: lease.shardId, token: lease.token, shard: lease.shard, runId: lease.runId };
  const scope = { instanceId: instance.id, generation: instance.generation };
  const event = (type: string, key: string) => ({ type, at: Date.now(), runId: lease.runId, shard: 'main', data: { shard: 'main', key, attempt: 1 } });
  for (let batch = 0; batch < count; batch++) {
    if (batch === count - 1 && process.env.SPLIT_EXPLAIN === '1') explainNext = url;
    const writes: JournalWrite[] = [];
    for (let i = 0; i < width; i++) {
      if (batch > 0) {
        const key = `disable-${(batch - 1) * width + i}`;
        writes.push({ kind: 'done', scope, key, result: key, events: [event('effect:done', key)] });
      }
      const key = `disable-${batch * width + i}`;
      writes.push({ kind: 'claim', scope, key, events: [event('effect:start', key)] });
    }
    await store.journal(instance.id, writes, fence);
  }
  await store.close();
}
const used = process.cpuUsage(cpu);
const loop = performance.eventLoopUtilization(elu);
const wallMs = performance.now() - wall;
if (session !== undefined) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(profileTo as string, JSON.stringify(profile));
  const self = new Map<string, number>();
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const callFrame = nodes.get(samples[i] as number)?.callFrame;
    if (callFrame === undefined) continue;
    const key = `${callFrame.functionName || '(anonymous)'} ${callFrame.url.split('/').slice(-2).join('/')}:${callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + (deltas[i + 1] ?? 0) / 1000);
  }
  for (const [key, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`${ms.toFixed(1).padStart(8)} ms  ${key}\n`);
}
await new Promise((resolve) => setTimeout(resolve, 1500));
const walAfter = await walStats();
const wal = Object.fromEntries(Object.entries(walAfter).map(([key, value]) => [key, value - (walBefore[key] ?? 0)]));
process.stdout.write(
  `WAL: ${JSON.stringify(wal)}; a sync ${((wal.wal_sync_time ?? 0) / (wal.wal_sync ?? 1)).toFixed(3)} ms, a write ${((wal.wal_write_time ?? 0) / (wal.wal_write ?? 1)).toFixed(3)} ms\n`,
);
await postgres.stop();

const fast = splits.filter((split) => split.sent !== undefined && split.parsed !== undefined && split.answered !== undefined && split.settled !== undefined);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const part = (name: string, of: (split: Split) => number) => {
  const values = fast.map(of);
  process.stdout.write(`${name.padEnd(44)} median ${median(values).toFixed(3)} ms, mean ${mean(values).toFixed(3)} ms\n`);
};
process.stdout.write(
  `${splits.length} batches (${fast.length} the fast way), writes a batch median ${median(splits.map((split) => split.writes))}; ` +
    `process CPU ${((used.user + used.system) / 1000).toFixed(0)} ms over ${wallMs.toFixed(0)} ms, event loop utilisation ${(loop.utilization * 100).toFixed(1)} %\n`,
);
part('B, end to end', (split) => (split.settled as number) - split.started);
part('client: call to statement sent', (split) => (split.sent as number) - split.started);
part('client: pg writes it', (split) => (split.written as number) - (split.sent as number));
part('written to first bytes read (server + pickup)', (split) => (split.answered as number) - (split.written as number));
if (fast.every((split) => split.serverEnd !== undefined)) {
  const tail = fast.slice(-Math.ceil(fast.length / 10));
  process.stdout.write(
    `  server executes, the last tenth of the batches: median ${median(tail.map((split) => (split.serverEnd as number) - (split.serverStart as number))).toFixed(3)} ms; ` +
      `B ${median(tail.map((split) => (split.settled as number) - split.started)).toFixed(3)} ms\n`,
  );
  part('  written to server start', (split) => (split.serverStart as number) - (split.written as number));
  part('  server executes', (split) => (split.serverEnd as number) - (split.serverStart as number));
  part('  server end to first bytes read (commit+pickup)', (split) => (split.answered as number) - (split.serverEnd as number));
}
part('first bytes to pg callback', (split) => (split.parsed as number) - (split.answered as number));
part('pg callback to journal settled', (split) => (split.settled as number) - (split.parsed as number));
// Between batches: from one settling to the next starting, when the next was already waiting (it started within 2 ms).
const gaps = splits
  .slice(1)
  .map((split, i) => split.started - ((splits[i] as Split).settled as number))
  .filter((gap) => gap < 2);
process.stdout.write(
  `${'settled to the next batch started (< 2 ms)'.padEnd(44)} median ${median(gaps).toFixed(3)} ms, mean ${mean(gaps).toFixed(3)} ms (${gaps.length} of ${splits.length - 1})\n`,
);
for (const [shape, n] of [...statements].sort((a, b) => b[1] - a[1]).slice(0, 15)) process.stdout.write(`${String(n).padStart(6)}  ${shape}\n`);
process.exit(0);
