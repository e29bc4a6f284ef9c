// pgChanges against a hand-written consumer of a slot, on a PostgreSQL with wal_level = logical
// started for the run (initdb + pg_ctl of the machine's PostgreSQL):
//  - catch-up: a backlog of changes (inserts, 10 per transaction) read and applied, one row per
//    change in a SQLite table in the transaction that records the position; the job is a
//    checkpointed job (pgChanges, ctx.tx, `auto` policy, runJob in this process), the hand loop
//    peeks 1,000 messages, decodes them with the same decoder, commits rows + LSN in one SQLite
//    transaction and then advances its slot. Rounds alternate, each on a slot of its own.
//  - following: both follow while a writer commits `RATE` changes a second for 10 s; the latency of
//    each change is the time from its commit to its apply (p50, p99, max).
//
//   node scripts/with-node.mjs bench/follow-changes.ts        # writes bench/follow-results.md
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, openStore, runJob } from '../src/index.ts';
import { pgChanges } from '../src/source/stream/pg-changes.ts';
import { PgoutputDecoder } from '../src/source/stream/pgoutput.ts';
import { createPgPool, type PgPool } from '../src/store/postgres/postgres-driver.ts';
import { tempDir } from '../test/helpers/cli.ts';
import { startLogicalPostgres } from '../test/helpers/logical-postgres.ts';

const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const FOLLOW_S = 10;

const server = await startLogicalPostgres();
const db: PgPool = await createPgPool({ connectionString: server.url, max: 4 });
const dir = tempDir('ckpt-bench-follow-');
let nextId = 1;

async function write(changes: number): Promise<void> {
  for (let done = 0; done < changes; done += 10) {
    await db.query('INSERT INTO items SELECT g, g FROM generate_series($1::int, $2::int) g', [nextId, nextId + 9]);
    nextId += 10;
  }
}

/** The checkpointed job: one row per change through ctx.tx. Resolves when it stops (completes, or `signal`). */
async function jobRun(slot: string, options: { follow?: boolean; signal?: AbortSignal; latencies?: number[] } = {}): Promise<number> {
  const store = await openStore(`sqlite:${join(dir, `${slot}.db`)}`);
  const job = defineJob({
    name: `follow-${slot}`,
    source: () => pgChanges({ connection: server.url, slot, publication: 'items_pub', pollMs: 100 }),
    async setup({ tx }) {
      await tx.query('CREATE TABLE IF NOT EXISTS applied (key TEXT PRIMARY KEY)');
    },
    async process(change, ctx) {
      await ctx.tx.query('INSERT INTO applied (key) VALUES (?)', [`${change.lsn}:${change.seq}`]);
      options.latencies?.push(Date.now() - Date.parse(change.time));
    },
  });
  const started = performance.now();
  try {
    const summary = await runJob(job, { store, ...(options.follow ? { follow: true } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    if (summary.outcome !== 'completed' && summary.outcome !== 'interrupted') throw new Error(`the job ended ${summary.outcome}: ${summary.error}`);
    return performance.now() - started;
  } finally {
    await store.close();
  }
}

/** The hand loop: peek, decode, commit rows + LSN in one SQLite transaction, then advance the slot. */
async function handRun(slot: string, options: { follow?: boolean; signal?: AbortSignal; latencies?: number[] } = {}): Promise<number> {
  const file = new DatabaseSync(join(dir, `${slot}.db`));
  file.exec('PRAGMA journal_mode = WAL; CREATE TABLE applied (key TEXT PRIMARY KEY); CREATE TABLE position (lsn TEXT)');
  const insert = file.prepare('INSERT INTO applied (key) VALUES (?)');
  const decoder = new PgoutputDecoder();
  const started = performance.now();
  let quiet = 0;
  while (!options.signal?.aborted) {
    const { rows } = await db.query(
      "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, 1000, 'proto_version', '1', 'publication_names', 'items_pub')",
      [slot],
    );
    let last: string | undefined;
    let seq = 0;
    file.exec('BEGIN');
    for (const row of rows) {
      const message = decoder.decode(row.data as Uint8Array);
      if (message.kind === 'begin') seq = 0;
      else if (message.kind === 'insert') seq++;
      else if (message.kind === 'commit') {
        for (let n = 1; n <= seq; n++) {
          insert.run(`${message.endLsn}:${n}`);
          options.latencies?.push(Date.now() - message.time.getTime());
        }
        last = message.endLsn;
      }
    }
    if (last !== undefined) file.prepare('INSERT INTO position (lsn) VALUES (?)').run(last);
    file.exec('COMMIT');
    if (last !== undefined) {
      await db.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [slot, last]);
      quiet = 0;
    }
    if (rows.length < 1000) {
      if (!options.follow) break;
      await sleep(Math.min(100, 25 * 2 ** quiet++));
    }
  }
  file.close();
  return performance.now() - started;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

try {
  await db.query('CREATE TABLE items (id int PRIMARY KEY, v int); CREATE PUBLICATION items_pub FOR TABLE items');
  const slots = Array.from({ length: 2 * ROUNDS + 2 }, (_, i) => `s${i}`);
  for (const slot of slots.slice(0, 2 * ROUNDS)) await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
  await write(BACKLOG);
  const rates: { job: number[]; hand: number[] } = { job: [], hand: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternated, the job first in even rounds.
    const order = round % 2 === 0 ? (['job', 'hand'] as const) : (['hand', 'job'] as const);
    for (const kind of order) {
      const slot = slots[2 * round + (kind === 'job' ? 0 : 1)] as string;
      const ms = kind === 'job' ? await jobRun(slot) : await handRun(slot);
      rates[kind].push((1000 * BACKLOG) / ms);
      console.error(`round ${round + 1} ${kind}: ${Math.round((1000 * BACKLOG) / ms)} changes/s`);
    }
  }

  // Following, both at once, while the writer commits RATE changes a second.
  const [jobSlot, handSlot] = slots.slice(2 * ROUNDS) as [string, string];
  await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [jobSlot]);
  await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [handSlot]);
  const stop = new AbortController();
  const latencies = { job: [] as number[], hand: [] as number[] };
  const following = [
    jobRun(jobSlot, { follow: true, signal: stop.signal, latencies: latencies.job }),
    handRun(handSlot, { follow: true, signal: stop.signal, latencies: latencies.hand }),
  ];
  const writeStart = performance.now();
  for (let tick = 0; tick < FOLLOW_S * 10; tick++) {
    await write(RATE / 10);
    const due = writeStart + (tick + 1) * 100;
    if (due > performance.now()) await sleep(due - performance.now());
  }
  const written = FOLLOW_S * RATE;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && (latencies.job.length < written || latencies.hand.length < written); ) await sleep(50);
  stop.abort();
  await Promise.all(following);

  const median = (values: number[]) => percentile(values, 50);
  const lines = [
    '# Following PostgreSQL changes: pgChanges against a hand-written slot consumer',
    '',
    `Made by \`bench/follow-changes.ts\` on ${new Date().toISOString().slice(0, 16)}Z (${ROUNDS} alternated rounds; this machine is shared, compare the two columns, not runs).`,
    '',
    `| measure | pgChanges + ctx.tx (checkpointed, \`auto\`) | hand loop (peek, commit rows + LSN, advance) | job / loop |`,
    '| --- | --- | --- | --- |',
    `| catch-up, ${BACKLOG.toLocaleString('en-US')} changes: changes/s (median of ${ROUNDS}) | ${Math.round(median(rates.job)).toLocaleString('en-US')} | ${Math.round(median(rates.hand)).toLocaleString('en-US')} | ${Math.round((100 * median(rates.job)) / median(rates.hand))} % |`,
    `| following ${RATE.toLocaleString('en-US')} changes/s for ${FOLLOW_S} s: commit-to-apply p50 | ${median(latencies.job)} ms | ${median(latencies.hand)} ms | |`,
    `| … p99 | ${percentile(latencies.job, 99)} ms | ${percentile(latencies.hand, 99)} ms | |`,
    `| … max | ${Math.max(...latencies.job)} ms | ${Math.max(...latencies.hand)} ms | |`,
    `| … changes applied | ${latencies.job.length.toLocaleString('en-US')} | ${latencies.hand.length.toLocaleString('en-US')} | |`,
    '',
    `Rounds, changes/s: job ${rates.job.map(Math.round).join(', ')}; hand loop ${rates.hand.map(Math.round).join(', ')}.`,
    '',
  ];
  writeFileSync(join(import.meta.dirname, 'follow-results.md'), lines.join('\n'));
  console.log(lines.join('\n'));
} finally {
  await db.end();
  await server.stop();
}
