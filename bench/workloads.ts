// The workloads of the benchmark, shared by every variant so they all do the same work.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * (c1m) is (c) at ten times the records (1,000,000): a table of its own, since its cells are
 * never scaled to (c)'s records. (e) is the effect workload: two 10 ms calls per record.
 */
export type Workload = 'a' | 'b' | 'c' | 'c1m' | 'e';

export const workloadNames: Record<Workload, string> = {
  a: '(a) cheap: a sha256 per record',
  b: '(b) slow: 1 ms of awaited I/O per record, concurrency 16',
  c: '(c) exactly-once: one output row per record',
  c1m: '(c) exactly-once at 1,000,000 rows: `ctx.tx.insert` from an async process',
  e: '(e) effects: per record a `ctx.once` with `verify` and a `ctx.step`, each awaiting a 10 ms call',
};

/** Whether the workload writes one output row per record ((c) and its 1,000,000-row table). */
export const writesRows = (workload: Workload): boolean => workload === 'c' || workload === 'c1m';

/** Records in flight at once for each workload ((e) says its own in each variant's name). */
export const concurrencyOf = (workload: Workload): number => (workload === 'b' ? 16 : 1);

export const digest = (n: number): string => createHash('sha256').update(`record-${n}`).digest('hex');

/** The per-record work, minus any write (workload c's row is written by each variant its own way). */
export async function work(workload: Workload, n: number): Promise<string> {
  if (workload === 'b') await sleep(1);
  return digest(n);
}

/**
 * (e)'s fake API: a call takes 10 ms (a timer, as a remote call's wait would be) and is logged,
 * so `verify` can ask it whether a call happened, as a real job asks the real API.
 */
export class FakeApi {
  readonly calls = new Set<string>();

  async call(key: string): Promise<string> {
    await sleep(10);
    this.calls.add(key);
    return key;
  }

  happened(key: string): boolean {
    return this.calls.has(key);
  }
}

/** Runs `each` over 0 ≤ n < records with at most `concurrency` in flight, calling `after` in order of dispatch. */
export async function pool(records: number, concurrency: number, each: (n: number) => Promise<unknown>, after?: (n: number) => void | Promise<void>) {
  const inFlight = new Set<Promise<unknown>>();
  for (let n = 0; n < records; n++) {
    const job = each(n);
    if (concurrency === 1) await job;
    else {
      inFlight.add(job);
      void job.finally(() => inFlight.delete(job));
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
    }
    if (after) await after(n);
  }
  await Promise.all(inFlight);
}
