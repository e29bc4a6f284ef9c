// Counts the work of one (e) run instead of timing it, for comparing journal changes on a shared
// machine: the effect journal's batches (and which writes travel together), their time, and on
// MySQL every round trip the driver makes.
//   node bench/journal-count.ts mysql job-c1 200      (store: sqlite | mysql; variant: job-c1 | job-c32 | hand-…)

import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqlJournal } from '../src/store/sql/sql-journal.ts';
import { SqliteJournal } from '../src/store/sqlite/sqlite-journal.ts';
import type { JournalWrite } from '../src/store/store.ts';
import { importPeer, runVariant } from './variants.ts';

const backend = process.argv[2] === 'mysql' ? 'mysql' : 'sqlite';
const variant = process.argv[3] ?? 'job-c1';
const records = Number(process.argv[4] ?? 200);

let trips = 0;
if (backend === 'mysql') {
  const { Connection } = createRequire(import.meta.url)('mysql2') as { Connection: { prototype: { query: (...args: unknown[]) => unknown } } };
  const query = Connection.prototype.query;
  Connection.prototype.query = function (this: unknown, ...args: unknown[]) {
    trips++;
    return query.apply(this, args);
  };
}

let batches = 0;
let batchMs = 0;
const shapes = new Map<string, number>();
const journal = backend === 'mysql' ? SqlJournal.prototype : SqliteJournal.prototype;
const write = journal.journal;
journal.journal = async function (this: typeof journal, instanceId: number, writes: readonly JournalWrite[], fence?: Parameters<typeof write>[2]) {
  batches++;
  // Keys without their record numbers: `done:disable-# + claim:step:main:#:notify`.
  const shape = writes.map((entry) => ('key' in entry ? `${entry.kind}:${entry.key.replace(/\d+/g, '#')}` : entry.kind)).join(' + ');
  shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
  const started = performance.now();
  try {
    return await write.call(this, instanceId, writes, fence);
  } finally {
    batchMs += performance.now() - started;
  }
};

const mysql =
  backend === 'mysql'
    ? ((await importPeer('mysql-client.ts')) as { freshMysqlDatabase: (name: string) => Promise<string>; dropMysqlDatabase: (url: string) => Promise<void> })
    : undefined;
const target = mysql ? await mysql.freshMysqlDatabase(`ckpt_bench_count_${process.pid}`) : join(tmpdir(), `ckpt-bench-count-${process.pid}.db`);
const cpu = process.cpuUsage();
const result = await runVariant({ workload: 'e', variant, records, backend, target });
const used = process.cpuUsage(cpu);
if (mysql) await mysql.dropMysqlDatabase(target);
else for (const suffix of ['', '-wal', '-shm', '.effects', '.effects-wal', '.effects-shm']) rmSync(`${target}${suffix}`, { force: true });
const summary = {
  backend,
  variant,
  records,
  msPerRecord: +(result.ms / records).toFixed(2),
  cpuMs: Math.round((used.user + used.system) / 1000),
  batches,
  batchesPerRecord: +(batches / records).toFixed(2),
  msPerBatch: batches === 0 ? null : +(batchMs / batches).toFixed(2),
  ...(backend === 'mysql' ? { roundTrips: trips, roundTripsPerRecord: +(trips / records).toFixed(2) } : {}),
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
for (const [shape, count] of [...shapes].sort((a, b) => b[1] - a[1]).slice(0, 6))
  process.stdout.write(`${String(count).padStart(6)}  ${shape.slice(0, 160)}\n`);
process.exit(0);
