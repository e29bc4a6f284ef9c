// The three workloads of the benchmark, shared by every variant so they all do the same work.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export type Workload = 'a' | 'b' | 'c';

export const workloadNames: Record<Workload, string> = {
  a: '(a) cheap: a sha256 per record',
  b: '(b) slow: 1 ms of awaited I/O per record, concurrency 16',
  c: '(c) exactly-once: one output row per record',
};

/** Records in flight at once for each workload. */
export const concurrencyOf = (workload: Workload): number => (workload === 'b' ? 16 : 1);

export const digest = (n: number): string => createHash('sha256').update(`record-${n}`).digest('hex');

/** The per-record work, minus any write (workload c's row is written by each variant its own way). */
export async function work(workload: Workload, n: number): Promise<string> {
  if (workload === 'b') await sleep(1);
  return digest(n);
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
