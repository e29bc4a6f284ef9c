// Peak RSS of a 10,000,000-record range job run by `ckpt run` with no flags (the CLI as a user
// runs it: no --max-semi-space-size, no NODE_OPTIONS), default policy, SQLite. The job file
// (rss-job.ts) reports the CLI process's peak RSS as it exits; the summary comes from the store.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { openStore } from '../src/index.ts';
import { sqliteUrl } from './variants.ts';

const [recordsText, target] = process.argv.slice(2) as [string, string];
const here = import.meta.dirname;
const env = { ...process.env };
delete env.NODE_OPTIONS;
const started = performance.now();
const run = spawnSync(
  process.execPath,
  [join(here, '..', 'bin', 'ckpt.js'), 'run', join(here, 'rss-job.ts'), '--store', sqliteUrl(target), '--param', `count=${recordsText}`, '--quiet'],
  {
    env,
    encoding: 'utf8',
  },
);
const ms = performance.now() - started;
if (run.status !== 0) throw new Error(`ckpt run exited ${run.status}: ${run.stderr}`);
const report = JSON.parse(run.stderr.trim().split('\n').at(-1) ?? '{}') as { maxRssMb: number; sum: number };
const store = await openStore(sqliteUrl(target));
const [instance] = await store.listInstances('rss');
const [runInfo] = instance === undefined ? [] : await store.listRuns(instance.id);
await store.close();
const stats = (runInfo?.stats ?? {}) as { policy?: string };
process.stdout.write(
  `${JSON.stringify({ ms, records: Number(recordsText), maxRssMb: report.maxRssMb, checkpoints: runInfo?.checkpoints ?? 0, policy: stats.policy ?? '' })}\n`,
);
