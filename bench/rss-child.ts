// Peak RSS of a 10,000,000-record range job under the default policy, on SQLite. The record's
// work is a sum, so the figure is the runner's footprint: a sha256 per record would add native
// Hash objects that V8 collects lazily (a plain loop of 3,000,000 of them peaks near 130 MB alone).
import { defineJob, openStore, range, runJob } from '../src/index.ts';
import { sqliteUrl } from './variants.ts';

const [recordsText, target] = process.argv.slice(2) as [string, string];
const records = Number(recordsText);
let total = 0;
const job = defineJob<number, unknown>({
  name: 'rss',
  source: () => range(0, records),
  process(n: number) {
    total += n;
  },
});
const store = await openStore(sqliteUrl(target));
const started = performance.now();
const summary = await runJob(job, { store });
await store.close();
const ms = performance.now() - started;
process.stdout.write(
  `${JSON.stringify({ ms, records: summary.records, sum: total, checkpoints: summary.checkpoints, policy: summary.policy, maxRssMb: process.resourceUsage().maxRSS / 1024 })}\n`,
);
