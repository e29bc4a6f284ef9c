import { Gauge, Registry } from 'prom-client';
import { instanceView, type Liveness } from './instance-view.ts';
import type { StoreReader } from './store-reader.ts';

/** Instances exported: the newest ones, so the series stay bounded however many days of instances a store keeps. */
export const METRICS_INSTANCES = 50;

/**
 * `/metrics` of `ckpt dashboard`: what the store says about its newest instances, read at scrape
 * time into a fresh registry (so an instance that leaves the window leaves no stale series).
 * Labels: job and instance (its id), plus status or outcome; never shard, whose count is unbounded.
 */
export async function storeMetrics(reader: StoreReader, liveness: Liveness): Promise<Registry> {
  const registry = new Registry();
  const registers = [registry];
  const base = ['job', 'instance'] as const;
  const gauge = (name: string, help: string, extra: string[] = []) => new Gauge({ name, help, labelNames: [...base, ...extra], registers });
  const completed = gauge('ckpt_instance_completed', '1 when every shard of the current generation is complete');
  const generation = gauge('ckpt_instance_generation', 'Current generation (bumped by --rerun and reset)');
  const shards = gauge('ckpt_instance_shards', 'Shards of the current generation by status', ['status']);
  const checkpointed = gauge('ckpt_instance_records_checkpointed', 'Records covered by the shards’ checkpoints');
  const done = gauge('ckpt_instance_records_done', 'Records done as of the workers’ last heartbeats (in flight included)');
  const total = gauge('ckpt_instance_records_total', 'Records in the sources, when every shard’s source knows its size');
  const rate = gauge('ckpt_instance_records_per_second', 'Records per second over the live runs');
  const workers = gauge('ckpt_instance_workers', 'Workers holding a shard with a live lease');
  const stale = gauge('ckpt_instance_presumed_dead_runs', 'Runs still marked running whose worker is gone (not reaped yet)');
  const lastCheckpoint = gauge('ckpt_instance_last_checkpoint_timestamp_seconds', 'When the newest checkpoint was written (Unix time)');
  const interval = gauge('ckpt_instance_checkpoint_interval_seconds', 'Checkpoint interval of the newest run (what the policy chose)');
  const runs = gauge('ckpt_instance_runs', 'Runs (all generations) by outcome', ['outcome']);
  const rework = gauge('ckpt_instance_rework_records', 'Records redone after crashes, over all runs (a lower bound)');
  const checkpoints = gauge('ckpt_instance_checkpoints', 'Checkpoints written, over all runs');
  const checkpointSeconds = gauge('ckpt_instance_checkpoint_seconds', 'Time spent checkpointing, over all runs');
  const deadLetters = gauge('ckpt_instance_dead_letters', 'Dead letters of the current generation');

  const overview = await reader.overview();
  for (const status of overview.statuses.slice(0, METRICS_INSTANCES)) {
    const data = await reader.instance(status.instance.id);
    if (data === undefined) continue;
    const labels = { job: status.instance.job, instance: String(status.instance.id) };
    const view = instanceView(data, { offset: 0, limit: 0, status: 'all', search: '' }, liveness, overview.location, data.readAt);
    const { summary } = view;
    completed.set(labels, status.instance.status === 'completed' ? 1 : 0);
    generation.set(labels, status.instance.generation);
    for (const name of ['running', 'pending', 'completed'] as const) shards.set({ ...labels, status: name }, summary.shards[name]);
    checkpointed.set(labels, summary.checkpointed);
    done.set(labels, summary.done);
    if (summary.total !== null) total.set(labels, summary.total);
    rate.set(labels, summary.rate);
    workers.set(labels, summary.workers.filter((worker) => worker.dead === null).length);
    stale.set(labels, summary.presumedDead);
    if (status.lastCheckpointAt !== null) lastCheckpoint.set(labels, status.lastCheckpointAt / 1000);
    if (summary.interval?.ms != null) interval.set(labels, summary.interval.ms / 1000);
    const outcomes = new Map<string, number>();
    for (const run of data.runs) outcomes.set(run.outcome, (outcomes.get(run.outcome) ?? 0) + 1);
    for (const [outcome, count] of outcomes) runs.set({ ...labels, outcome }, count);
    rework.set(
      labels,
      data.runs.reduce((sum, run) => sum + (run.rework ?? 0), 0),
    );
    checkpoints.set(
      labels,
      data.runs.reduce((sum, run) => sum + run.checkpoints, 0),
    );
    checkpointSeconds.set(labels, data.runs.reduce((sum, run) => sum + run.checkpointMs, 0) / 1000);
    deadLetters.set(labels, data.deadLetterCount);
  }
  return registry;
}
