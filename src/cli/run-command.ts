import { ExitCode, UsageError } from '../errors.ts';
import type { RunEvent } from '../events.ts';
import type { AnyJob } from '../job/define.ts';
import type { CheckpointSpec } from '../job/policy/policy.ts';
import { type RunSummary, runJob } from '../job/runner.ts';
import type { OnDrift } from '../job/shard/drift.ts';
import { recordStopAtOnce } from '../job/shard/stop-at-once.ts';
import { shutdownOnSignals } from '../job/shutdown.ts';
import { DEFAULT_LEASE_MS } from '../job/workers.ts';
import { checkServeToken, METRICS_ACCESS } from '../metrics/http-access.ts';
import type { Store, StoredPlan } from '../store/store.ts';
import { describeCorrupt, formatCount, formatMs, formatParams, formatPosition } from './format.ts';
import { loadJob, parseParams } from './load-job.ts';
import { ProgressBar } from './progress.ts';
import { type CliIo, openCliStore, secretKeyFileFor } from './shared.ts';

export interface RunCommandOptions {
  store?: string;
  param: string[];
  rerun?: boolean;
  every?: number;
  everyMs?: number;
  checkpoint?: 'auto';
  maxReworkMs?: number;
  /** Percent. */
  maxOverhead?: number;
  concurrency?: number;
  drainMs?: number;
  leaseMs?: number;
  wait?: boolean;
  follow?: boolean;
  heartbeatMs?: number;
  storeRetryMs?: number;
  json?: boolean;
  quiet?: boolean;
  onDrift?: OnDrift;
  /** Serve Prometheus metrics of this worker on this port (0: any free port) while it runs. */
  metricsPort?: number;
  metricsHost?: string;
  metricsToken?: string;
  /** `ckpt apply`: perform only this plan's effects, hold the others. */
  plan?: StoredPlan;
}

/** How long past the drain deadline a stopping run may take to save and report. */
const STOP_GRACE_MS = 2_000;
/** How long a stop at once waits for the shard runs to record exactly how far they got. */
const LAST_WORDS_MS = 500;

/** Exit now, once each running shard has said how far it got (so its run reads as interrupted, not crashed). */
function exitAtOnce(): void {
  void recordStopAtOnce(LAST_WORDS_MS).finally(() => process.exit(ExitCode.interrupted));
}

export async function runCommand(file: string, options: RunCommandOptions, io: CliIo): Promise<number> {
  const params = parseParams(options.param);
  let checkpoint: CheckpointSpec | undefined;
  if (options.every !== undefined) checkpoint = { every: options.every };
  if (options.everyMs !== undefined) checkpoint = { everyMs: options.everyMs };
  if (options.checkpoint === 'auto') checkpoint = 'auto';
  if (options.maxReworkMs !== undefined || options.maxOverhead !== undefined) {
    checkpoint = {
      auto: {
        ...(options.maxReworkMs === undefined ? {} : { maxReworkMs: options.maxReworkMs }),
        ...(options.maxOverhead === undefined ? {} : { maxOverhead: options.maxOverhead / 100 }),
      },
    };
  }
  // Signals are taken over first, so one that arrives while the job loads still stops cleanly.
  let progress: ProgressBar | undefined;
  const shutdown = shutdownOnSignals({
    onFirst: (signal) => {
      progress?.clear();
      if (!options.quiet)
        io.stderr.write(`${signal}: stopping intake, finishing records in flight, then saving a checkpoint (send it again to stop at once)\n`);
      // The drain deadline bounds the records in flight; this bounds everything else a job can
      // hang in (importing, params, shards(), source(), size(), fingerprint()): a stop ends in time.
      setTimeout(
        () => {
          progress?.clear();
          io.stderr.write(`${signal}: the job did not stop within the drain deadline; stopped at once, the last checkpoint is kept, run again to resume\n`);
          exitAtOnce();
        },
        Math.min((options.drainMs ?? 10_000) + STOP_GRACE_MS, 2_147_483_647),
      );
    },
    onForce: (signal) => {
      progress?.clear();
      io.stderr.write(`${signal} again: stopped at once; the last checkpoint is kept, run again to resume\n`);
      exitAtOnce();
    },
  });
  let store: Store | undefined;
  let metrics: { onEvent: (event: RunEvent) => void; close(): Promise<void> } | undefined;
  // While the job runs, the process stays up even when all it waits for is a promise that holds
  // nothing open (a record or a source() that never settles): Node would otherwise end it with
  // exit 13 and "unsettled top-level await", the run left running, instead of stopping it by a
  // signal within the drain deadline. The CLI exits by itself once the command returns.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    checkLeaseFlags(options, io.env);
    const metricsToken = options.metricsToken ?? (io.env.CKPT_METRICS_TOKEN || undefined);
    // Without a port nothing is served: a host or a token alone would be dropped without a word.
    if (options.metricsPort === undefined && (options.metricsHost !== undefined || options.metricsToken !== undefined)) {
      const flag = options.metricsHost !== undefined ? '--metrics-host' : '--metrics-token';
      throw new UsageError(`${flag} needs --metrics-port N: without a port no metrics are served (0 picks a free one)`);
    }
    // Refused before the job is even loaded: a worker's metrics name its job, shards and errors.
    if (options.metricsPort !== undefined) checkServeToken(options.metricsHost ?? '127.0.0.1', metricsToken, METRICS_ACCESS);
    const job = await loadJob(file);
    // prom-client is loaded only by the runs that serve metrics.
    if (options.metricsPort !== undefined)
      metrics = await (await import('../metrics/worker-metrics.ts')).startWorkerMetrics({ ...options, metricsToken }, io.stderr);
    store = await openCliStore(options.store);
    return await runLoaded(job, store);
  } finally {
    clearInterval(keepAlive);
    progress?.clear();
    shutdown.dispose();
    await store?.close();
    await metrics?.close();
  }

  async function runLoaded(job: AnyJob, store: Store): Promise<number> {
    const interactive = io.stderr.isTTY === true && !options.json && !options.quiet;
    progress = interactive ? new ProgressBar(io.stderr, job.name) : undefined;
    const onEvent = (event: RunEvent) => {
      metrics?.onEvent(event);
      // A fallback redoes work the store had saved: said on stderr whatever the output mode (the
      // progress bar prints it on a terminal; --json has the event itself). A refusal says it in its error line.
      if (event.type === 'checkpoint:corrupt' && !interactive && !options.json && event.data.refused !== true) {
        io.stderr.write(`${describeCorrupt(event.data)}\n`);
      }
      if (options.quiet) return;
      if (progress) progress.onEvent(event);
      else io.stdout.write(`${JSON.stringify(event)}\n`);
    };
    const summary = await runJob(job, {
      store,
      params,
      rerun: options.rerun === true,
      ...(checkpoint ? { checkpoint } : {}),
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.drainMs === undefined ? {} : { drainMs: options.drainMs }),
      ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
      wait: options.wait === true,
      ...(options.follow ? { follow: true } : {}),
      ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
      ...(options.storeRetryMs === undefined ? {} : { storeRetryMs: options.storeRetryMs }),
      signal: shutdown.signal,
      onEvent,
      onDrift: options.onDrift ?? 'fail',
      ...(options.plan === undefined ? {} : { plan: options.plan }),
      ...(secretKeyFileFor(options.store) === undefined ? {} : { secretKeyFile: secretKeyFileFor(options.store) }),
    });
    progress?.clear();
    if (options.json) io.stdout.write(`${JSON.stringify({ type: 'summary', ...summary })}\n`);
    else if (!io.stdout.isTTY && !options.quiet) io.stdout.write(`${JSON.stringify({ type: 'summary', ...summary })}\n`);
    if (!options.json) io.stderr.write(`${describeSummary(summary, options.quiet === true, options.plan !== undefined)}\n`);
    // The failure line names the job's file:line:col; the whole stack is for whoever debugs it.
    if (io.env.CKPT_DEBUG && summary.stack !== undefined) io.stderr.write(`${summary.stack}\n`);
    return summary.exitCode;
  }
}

/** What the resume had to do again, in words: never 0 when it was not, and "at most" when it is a bound. */
/** Below this a lease lapses between two round trips to the store: every worker would lose its shard. */
const MIN_LEASE_MS = 100;

/** `--lease-ms` long enough to be kept (`ckpt run`, `ckpt dlq --retry`), or one line (exit 2). */
export function checkLeaseMs(leaseMs: number): void {
  if (leaseMs < MIN_LEASE_MS) {
    throw new UsageError(
      `--lease-ms ${leaseMs} is too short: a lease under ${MIN_LEASE_MS} ms lapses between two round trips to the store; give at least ${MIN_LEASE_MS} (default ${DEFAULT_LEASE_MS})`,
    );
  }
}

/**
 * A lease the worker can keep, or one line (exit 2). A heartbeat no shorter than the lease lets it
 * lapse between checkpoints, so a live worker's shard goes to another; crash tests that want
 * exactly that (a worker that renews only by checkpoints) set CKPT_ALLOW_LAPSING_LEASE=1.
 */
function checkLeaseFlags(options: RunCommandOptions, env: NodeJS.ProcessEnv): void {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  checkLeaseMs(leaseMs);
  if (options.heartbeatMs !== undefined && options.heartbeatMs >= leaseMs && env.CKPT_ALLOW_LAPSING_LEASE !== '1') {
    const lease = `${leaseMs} ms${options.leaseMs === undefined ? ', the default' : ''}`;
    throw new UsageError(
      `--heartbeat-ms ${options.heartbeatMs} is not shorter than the lease (${lease}): between checkpoints the lease would lapse and another worker take the shard; use at most a third of the lease`,
    );
  }
}

function describeRework(summary: RunSummary): string {
  if (summary.rework === 0) return 'nothing to redo: the run before stopped at its checkpoint';
  const step = Math.max(...summary.shards.map((shard) => shard.reworkMarkStep ?? 0));
  const count = summary.reworkAtMost ? `at most ${formatCount(summary.rework)}` : formatCount(summary.rework);
  const bound = summary.reworkAtMost ? ` (a bound from the crashed run's last progress mark: at most ${formatCount(step)} above the true number)` : '';
  return `redid ${count} records (${formatMs(summary.reworkMs)} of work) that an earlier run had done after the last checkpoint${bound}`;
}

/** A worker whose runs were all fenced out, the instance completed by the others. */
function describeLost(name: string, lost: NonNullable<RunSummary['lost']>): string {
  const runs = lost.map((run) => `run ${run.runId} (shard ${run.shard})`).join(', ');
  const reasons = [...new Set(lost.map((run) => run.reason))].join('; ');
  return `lost ${name}: this worker's ${runs} lost its lease to another worker (${reasons}), and the others completed the instance; what this worker did after its last checkpoint was rolled back (ckpt runs shows it lost). Nothing is left to do`;
}

/** The lines a person reads at the end of a run. */
export function describeSummary(summary: RunSummary, quiet: boolean, applying = false): string {
  const name = `${summary.job} ${formatParams(summary.params)}`.replace(/ -$/, '');
  if (summary.outcome === 'already-complete') {
    // ckpt apply has no --rerun: a plan is of one generation, and a new one is planned after a reset.
    const again = applying ? `To do it again: ckpt reset ${summary.job}, then a new ckpt plan` : 'Use --rerun to run it again from the start';
    return `${name} is already complete (generation ${summary.generation}); nothing to do. ${again}`;
  }
  // A shard is named unless it is the one shard of a job that declares none: a worker that ran one
  // shard of eight said 'checkpoint at 99', of no shard anyone could tell.
  const named = summary.shards.length > 1 || summary.shards.some((shard) => shard.shard !== 'main');
  const positions = summary.shards.map((shard) => (named ? `${shard.shard}@${formatPosition(shard.position)}` : formatPosition(shard.position)));
  const head =
    summary.outcome === 'completed'
      ? summary.incremental?.nothingNew
        ? `completed ${name}: nothing new since generation ${summary.incremental.from} ended`
        : `completed ${name}`
      : summary.outcome === 'interrupted'
        ? `interrupted at ${positions.join(', ') || 'start'}; run again to resume`
        : summary.outcome === 'held'
          ? // A worker held before it ran any shard tells of no checkpoint ('start' was false: other shards had theirs).
            `${name} ${summary.error ?? 'held'}${positions.length > 0 ? ` (checkpoint at ${positions.join(', ')})` : ''}`
          : summary.outcome === 'lost'
            ? describeLost(name, summary.lost ?? [])
            : `failed ${name}: ${summary.error ?? 'unknown error'}; the checkpoint stays at ${positions.join(', ') || 'start'}, fix the cause and run again to resume`;
  if (quiet) return head;
  const auto = summary.policy.startsWith('auto');
  const rate = summary.durationMs > 0 ? (1000 * summary.records) / summary.durationMs : 0;
  const lines = [
    head,
    `  records   ${formatCount(summary.records)} in ${formatMs(summary.durationMs)} (${formatCount(rate)}/s)${summary.shards.length > 1 ? ` over ${summary.shards.length} shards` : ''}`,
    `  checkpoints ${formatCount(summary.checkpoints)} written (${auto ? 'auto' : summary.policy}), ${formatMs(summary.checkpointMs)} = ${summary.overheadPct.toFixed(2)} % of the run`,
  ];
  // The auto policy explains its choice: the interval, and which bound (or Young's optimum) set it.
  if (auto) lines.push(`  interval  ${summary.policy.replace(/^auto: /, '')}`);
  if (summary.deadLetters > 0) {
    lines.push(`  skipped   ${formatCount(summary.deadLetters)} records to dead letters after their retries; see ckpt dlq ${summary.job}`);
  }
  if (summary.lateCompletions !== undefined) {
    lines.push(
      `  late      ${formatCount(summary.lateCompletions)} effects completed after this worker's lease was taken; the journal kept another run's result where it had one (see ckpt audit)`,
    );
  }
  const resumed = summary.shards.filter((shard) => shard.resumedFrom !== null || shard.rework > 0);
  if (resumed.length > 0) {
    const from = resumed.map((shard) => formatPosition(shard.resumedFrom)).join(', ');
    lines.push(`  resumed   from ${from}; ${describeRework(summary)}`);
  }
  return lines.join('\n');
}
