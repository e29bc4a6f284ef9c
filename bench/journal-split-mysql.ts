// Where a MySQL/MariaDB journal batch's time goes (journal-split.ts's counterpart): one (e) run,
// each usual batch (one multi-statement packet on the batch pool) split into the client's work
// before the packet is sent, the server's start (its own clock, SYSDATE(6), read in the packet),
// its statements up to COMMIT, the COMMIT (the redo log's flush), and the answer's return and
// parsing until the journal settles.
//   node bench/journal-split-mysql.ts <records> [concurrency]     server: $MYSQL_URL, else root@127.0.0.1:3306
// SPLIT_EACH=1 reads the server's clock after every statement instead: what each costs (a clock
// read included in each); the end-to-end lines are then empty.
import { createRequire } from 'node:module';
import { aroundJournal } from './journal-timing.ts';
import { importPeer, runVariant } from './variants.ts';

const records = Number(process.argv[2] ?? 2000);
const width = Number(process.argv[3] ?? 32);

interface Split {
  started: number;
  sent?: number;
  answered?: number;
  settled?: number;
  /** The server's clock (this process's timeline): the packet's first statement, before COMMIT, after COMMIT. */
  server?: [number, number, number];
  writes: number;
  /** SPLIT_EACH=1: the server's clock before the first statement and after each, and the statements. */
  each?: number[];
  labels?: string[];
}
const splits: Split[] = [];
let current: Split | undefined;

// The store's own mysql2 (the root's node_modules).
const { Connection } = createRequire(new URL('../src/store/mysql/', import.meta.url))('mysql2') as {
  Connection: { prototype: { query: (...args: unknown[]) => unknown } };
};
const query = Connection.prototype.query;
Connection.prototype.query = function (this: unknown, ...args: unknown[]) {
  const split = current;
  const sql = args[0];
  if (split === undefined || typeof sql !== 'string' || !sql.includes('START TRANSACTION') || !sql.includes('COMMIT')) return query.apply(this, args);
  const clock = 'SELECT UNIX_TIMESTAMP(SYSDATE(6)) AS t';
  if (process.env.SPLIT_EACH === '1') {
    // The server's clock after every statement: what each one costs.
    const parts = sql.split(';\n');
    split.labels = parts.map((part) => part.replace(/\s+/g, ' ').slice(0, 48));
    args[0] = [clock, ...parts.flatMap((part) => [part, clock])].join(';\n');
  } else args[0] = sql.replace('START TRANSACTION', `${clock};\nSTART TRANSACTION`).replace(/\nCOMMIT(;|$)/, `\n${clock};\nCOMMIT;\n${clock}$1`);
  split.sent = performance.now();
  const callback = args.at(-1);
  if (typeof callback === 'function') {
    args[args.length - 1] = (error: unknown, results: unknown, ...rest: unknown[]) => {
      split.answered = performance.now();
      if (Array.isArray(results)) {
        const times = results
          .filter((result): result is { t: string }[] => Array.isArray(result) && result[0]?.t !== undefined)
          .map((result) => Number(result[0]?.t) * 1000 - performance.timeOrigin);
        if (times.length === 3) split.server = times as [number, number, number];
        else split.each = times;
      }
      return callback(error, results, ...rest);
    };
  }
  return query.apply(this, args);
};

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

const mysql = (await importPeer('mysql-client.ts')) as {
  freshMysqlDatabase: (name: string) => Promise<string>;
  dropMysqlDatabase: (url: string) => Promise<void>;
};
const target = await mysql.freshMysqlDatabase(`ckpt_bench_split_${process.pid}`);
const result = await runVariant({ workload: 'e', variant: `job-c${width}`, records, backend: 'mysql', target });
await mysql.dropMysqlDatabase(target);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
if (process.env.SPLIT_EACH === '1') {
  const costs = new Map<string, number[]>();
  for (const split of splits) {
    const { each, labels } = split;
    if (each === undefined || labels === undefined || each.length !== labels.length + 1) continue;
    labels.forEach((label, i) => {
      const list = costs.get(label.replace(/\d+/g, '#')) ?? [];
      list.push((each[i + 1] as number) - (each[i] as number));
      costs.set(label.replace(/\d+/g, '#'), list);
    });
  }
  for (const [label, list] of costs)
    if (list.length > 20) process.stdout.write(`${median(list).toFixed(3).padStart(7)} ms median (${list.length})  ${label}\n`);
}
const fast = splits.filter((split) => split.sent !== undefined && split.answered !== undefined && split.server !== undefined);
const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const part = (name: string, of: (split: Split) => number) => {
  const values = fast.map(of);
  process.stdout.write(`${name.padEnd(44)} median ${median(values).toFixed(3)} ms, mean ${mean(values).toFixed(3)} ms\n`);
};
process.stdout.write(
  `job-c${width} ${records} records: ${result.ms.toFixed(0)} ms; ${splits.length} batches (${fast.length} in one packet), writes a batch median ${median(splits.map((split) => split.writes))}\n`,
);
const at = (split: Split, i: number) => (split.server as number[])[i] as number;
part('B, end to end', (split) => (split.settled as number) - split.started);
part('client: call to packet sent', (split) => (split.sent as number) - split.started);
part('sent to server start', (split) => at(split, 0) - (split.sent as number));
part('server: statements before COMMIT', (split) => at(split, 1) - at(split, 0));
part('server: COMMIT', (split) => at(split, 2) - at(split, 1));
part('server end to answer parsed', (split) => (split.answered as number) - at(split, 2));
part('answer to journal settled', (split) => (split.settled as number) - (split.answered as number));
process.exit(0);
