// Child process: the commit floor of one store, the smallest durable commit its effect journal
// could ever make, timed one at a time. SQLite: BEGIN IMMEDIATE, one single-row INSERT, COMMIT in
// a WAL file with synchronous = FULL, as the store's side file (`<store>.effects`) writes a
// journal batch, in the directory given (where the bench's stores live); PostgreSQL and MySQL:
// peers/server-commit.ts. Prints the samples (ms) as one JSON line.
//   node bench/commit-floor.ts sqlite /tmp/dir/floor.db 300
import { rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { type Backend, importPeer } from './variants.ts';

export interface CommitSamples {
  samplesMs: number[];
  /** The durability setting the commits ran under (SQLite's pragmas, the server's setting). */
  setting: string;
}

type ServerCommits = (url: string, warmup: number, count: number) => Promise<CommitSamples>;

/** Commits made and not counted first: a connection's first statements plan, allocate and warm up. */
const WARMUP = 20;

function sqliteCommits(path: string, warmup: number, count: number): CommitSamples {
  const db = new DatabaseSync(path);
  try {
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = FULL');
    db.exec('CREATE TABLE commit_floor (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)');
    const insert = db.prepare('INSERT INTO commit_floor (id, at) VALUES (?, ?)');
    const samplesMs: number[] = [];
    for (let id = 0; id < warmup + count; id++) {
      const started = performance.now();
      db.exec('BEGIN IMMEDIATE');
      insert.run(id, Date.now());
      db.exec('COMMIT');
      if (id >= warmup) samplesMs.push(performance.now() - started);
    }
    return { samplesMs, setting: 'journal_mode = WAL, synchronous = FULL' };
  } finally {
    db.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
  }
}

const backend = process.argv[2] as Backend;
const target = process.argv[3] ?? '';
const count = Number(process.argv[4] ?? 300);
let result: CommitSamples;
if (backend === 'sqlite') result = sqliteCommits(target, WARMUP, count);
else {
  const peer = (await importPeer('server-commit.ts')) as Record<'postgresCommits' | 'mysqlCommits', ServerCommits>;
  result = await (backend === 'postgres' ? peer.postgresCommits : peer.mysqlCommits)(target, WARMUP, count);
}
process.stdout.write(`${JSON.stringify({ ...result, warmup: WARMUP })}\n`);
process.exit(0);
