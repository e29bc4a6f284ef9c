// Resume latency, one process per measurement: `prepare` leaves an instance with `done` records
// checkpointed (or a DBOS workflow with `done` completed steps); `measure` starts over in a new
// process and prints the time from process start to the first record (or step) it processes.
import { defineJob, openStore, range, runJob } from '../src/index.ts';
import { importPeer, sqliteUrl } from './variants.ts';
import { digest } from './workloads.ts';

const [system, mode, doneText, target] = process.argv.slice(2) as ['ckpt' | 'dbos', 'prepare' | 'measure', string, string];
const done = Number(doneText);

if (system === 'dbos') {
  const { dbosResume } = (await importPeer('dbos.ts')) as { dbosResume: (url: string, mode: string, done: number) => Promise<number> };
  const ms = await dbosResume(target, mode, done);
  process.stdout.write(`${JSON.stringify({ ms })}\n`);
  process.exit(0);
}

const stop = new AbortController();
const job = defineJob<number, unknown>({
  name: 'resume-latency',
  source: () => range(0, done + 1_000_000),
  async process(n: number) {
    if (mode === 'measure') {
      const now = performance.now();
      // CPU time beside wall time: on a loaded machine the wall time is mostly waiting for a core.
      const cpu = process.cpuUsage(cpuAtOpen);
      process.stdout.write(`${JSON.stringify({ ms: now, fromOpenMs: now - storeOpening, fromOpenCpuMs: (cpu.user + cpu.system) / 1000, firstRecord: n })}\n`);
      process.exit(0);
    }
    digest(n);
    if (n === done - 1) stop.abort();
  },
});
// Loading code is process start's share (the line beside it); from store open on it is the
// library's own time: opening the file, reaping the dead run, claiming, reading the checkpoint.
await import('../src/store/sqlite/sqlite-store.ts');
const storeOpening = performance.now();
const cpuAtOpen = process.cpuUsage();
const store = await openStore(sqliteUrl(target));
const summary = await runJob(job, { store, signal: stop.signal });
await store.close();
process.stdout.write(`${JSON.stringify({ outcome: summary.outcome, records: summary.records })}\n`);
