// The job of the peak-RSS measurement, run by `ckpt run` as a user would (rss-child.ts): a sum
// per record over `range`, so the figure is the runner's and the CLI's own footprint. It reports
// the process's peak RSS as the process exits.
import { defineJob, range } from '../src/index.ts';

let total = 0;
process.on('exit', () => {
  process.stderr.write(`${JSON.stringify({ maxRssMb: process.resourceUsage().maxRSS / 1024, sum: total })}\n`);
});

export default defineJob<number, { count: number }>({
  name: 'rss',
  params: (raw) => ({ count: Number(raw.count ?? 10_000_000) }),
  source: ({ params }) => range(0, params.count),
  process(n) {
    total += n;
  },
});
