import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunEvent } from '../events.ts';

/**
 * Prometheus metrics of one worker process, fed from the typed event map (the same events the
 * progress bar and the event log read). Cardinality is bounded by construction: counters carry
 * job and instance only; per-shard gauges exist only for the shards this process holds right now
 * (a worker holds one at a time) and are removed when the shard's run ends.
 */
export class RunMetrics {
  readonly registry = new Registry();
  readonly #records: Counter<'job' | 'instance'>;
  readonly #checkpoints: Counter<'job' | 'instance'>;
  readonly #checkpointSeconds: Histogram<'job' | 'instance'>;
  readonly #rework: Counter<'job' | 'instance'>;
  readonly #deadLetters: Counter<'job' | 'instance'>;
  readonly #retries: Counter<'job' | 'instance'>;
  readonly #recordErrors: Counter<'job' | 'instance'>;
  readonly #inDoubt: Counter<'job' | 'instance' | 'resolution'>;
  readonly #leaseLosses: Counter<'job' | 'instance'>;
  readonly #storeRetries: Counter<'job' | 'instance' | 'operation'>;
  readonly #runs: Counter<'job' | 'instance' | 'outcome'>;
  readonly #crashedFound: Counter<'job' | 'instance'>;
  readonly #shardProcessed: Gauge<'job' | 'instance' | 'shard'>;
  readonly #rate: Gauge<'job' | 'instance' | 'shard'>;
  readonly #inFlight: Gauge<'job' | 'instance' | 'shard'>;
  readonly #intervalSeconds: Gauge<'job' | 'instance' | 'shard'>;
  readonly #intervalRecords: Gauge<'job' | 'instance' | 'shard'>;
  readonly #lastCheckpoint: Gauge<'job' | 'instance' | 'shard'>;
  /** When each live shard's current interval began (its run's start, then each checkpoint). */
  readonly #intervalStart = new Map<string, number>();
  readonly #seen = new Set<string>();

  constructor() {
    const registers = [this.registry];
    const base = ['job', 'instance'] as const;
    const shard = ['job', 'instance', 'shard'] as const;
    this.#records = new Counter({ name: 'ckpt_records_processed_total', help: 'Records whose work a checkpoint committed', labelNames: base, registers });
    this.#checkpoints = new Counter({ name: 'ckpt_checkpoints_total', help: 'Checkpoints committed', labelNames: base, registers });
    this.#checkpointSeconds = new Histogram({
      name: 'ckpt_checkpoint_duration_seconds',
      help: 'Time from stopping intake (drain of records in flight included) to the end of the commit',
      labelNames: base,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.#rework = new Counter({
      name: 'ckpt_rework_records_total',
      help: 'Records processed again because a crashed run had done them after its last checkpoint (a lower bound)',
      labelNames: base,
      registers,
    });
    this.#deadLetters = new Counter({ name: 'ckpt_dead_letters_total', help: 'Records sent to dead letters after their retries', labelNames: base, registers });
    this.#retries = new Counter({ name: 'ckpt_record_retries_total', help: 'Record attempts that failed and were retried', labelNames: base, registers });
    this.#recordErrors = new Counter({ name: 'ckpt_record_errors_total', help: 'Records whose failure failed the run', labelNames: base, registers });
    this.#inDoubt = new Counter({
      name: 'ckpt_effects_in_doubt_total',
      help: 'Effects found in doubt after a crash, by how they were resolved',
      labelNames: [...base, 'resolution'],
      registers,
    });
    this.#leaseLosses = new Counter({
      name: 'ckpt_lease_losses_total',
      help: 'Shard runs that lost their lease (fenced by another worker, or given up while the store was unreachable)',
      labelNames: base,
      registers,
    });
    this.#storeRetries = new Counter({
      name: 'ckpt_store_retries_total',
      help: 'Store calls retried because the store was unreachable',
      labelNames: [...base, 'operation'],
      registers,
    });
    this.#runs = new Counter({
      name: 'ckpt_runs_total',
      help: 'Shard runs of this process that ended, by outcome',
      labelNames: [...base, 'outcome'],
      registers,
    });
    this.#crashedFound = new Counter({
      name: 'ckpt_crashed_runs_found_total',
      help: "Other processes' runs this process found dead and marked crashed",
      labelNames: base,
      registers,
    });
    this.#shardProcessed = new Gauge({
      name: 'ckpt_shard_processed_records',
      help: 'Records done in the shard held now, records in flight included',
      labelNames: shard,
      registers,
    });
    this.#rate = new Gauge({
      name: 'ckpt_records_per_second',
      help: 'Records per second of the shard held now, since its run began',
      labelNames: shard,
      registers,
    });
    this.#inFlight = new Gauge({ name: 'ckpt_records_in_flight', help: 'Records dispatched and not yet finished', labelNames: shard, registers });
    this.#intervalSeconds = new Gauge({
      name: 'ckpt_checkpoint_interval_seconds',
      help: 'Time between the last two checkpoints of the shard held now (the interval the policy chose, as observed)',
      labelNames: shard,
      registers,
    });
    this.#intervalRecords = new Gauge({
      name: 'ckpt_checkpoint_interval_records',
      help: 'Records covered by the last checkpoint',
      labelNames: shard,
      registers,
    });
    this.#lastCheckpoint = new Gauge({
      name: 'ckpt_last_checkpoint_timestamp_seconds',
      help: 'When the shard held now last committed a checkpoint (Unix time)',
      labelNames: shard,
      registers,
    });
  }

  /** The listener to pass as `onEvent` (alone or beside others). */
  readonly onEvent = (event: RunEvent): void => {
    const base = { job: event.job, instance: String(event.instanceId) };
    if (!this.#seen.has(`${base.job}\0${base.instance}`)) this.#start(base);
    switch (event.type) {
      case 'run:start':
      case 'run:resume': {
        const labels = { ...base, shard: event.data.shard };
        this.#intervalStart.set(event.data.shard, event.at);
        this.#shardProcessed.set(labels, event.type === 'run:resume' ? event.data.processed : 0);
        this.#inFlight.set(labels, 0);
        if (event.type === 'run:resume') this.#rework.inc(base, event.data.rework);
        break;
      }
      case 'progress': {
        const labels = { ...base, shard: event.data.shard };
        this.#shardProcessed.set(labels, event.data.processed);
        this.#inFlight.set(labels, event.data.inFlight);
        this.#rate.set(labels, event.data.rate);
        break;
      }
      case 'checkpoint': {
        const labels = { ...base, shard: event.data.shard };
        this.#records.inc(base, event.data.records);
        this.#checkpoints.inc(base);
        this.#checkpointSeconds.observe(base, event.data.ms / 1000);
        const since = this.#intervalStart.get(event.data.shard);
        if (since !== undefined) this.#intervalSeconds.set(labels, Math.max(0, event.at - since) / 1000);
        this.#intervalStart.set(event.data.shard, event.at);
        this.#intervalRecords.set(labels, event.data.records);
        this.#lastCheckpoint.set(labels, event.at / 1000);
        this.#shardProcessed.set(labels, event.data.processed);
        break;
      }
      case 'run:end':
        // A fenced run ends either here (outcome lost) or with shard:lost below, never both.
        if (event.data.outcome === 'lost') this.#leaseLosses.inc(base);
        this.#runs.inc({ ...base, outcome: event.data.outcome });
        this.#forgetShard(base, event.data.shard);
        break;
      case 'run:crashed':
        this.#crashedFound.inc(base);
        break;
      case 'record:retry':
        this.#retries.inc(base);
        break;
      case 'record:dead':
        this.#deadLetters.inc(base);
        break;
      case 'record:error':
        this.#recordErrors.inc(base);
        break;
      case 'effect:in-doubt':
        this.#inDoubt.inc({ ...base, resolution: event.data.resolution });
        break;
      case 'shard:lost':
        this.#leaseLosses.inc(base);
        this.#runs.inc({ ...base, outcome: 'lost' });
        this.#forgetShard(base, event.data.shard);
        break;
      case 'store:retry':
        this.#storeRetries.inc({ ...base, operation: event.data.operation });
        break;
      default:
        break;
    }
  };

  /** Every counter of an instance starts at 0, so a scrape lists them all before the first event of each kind. */
  #start(base: { job: string; instance: string }): void {
    this.#seen.add(`${base.job}\0${base.instance}`);
    for (const counter of [
      this.#records,
      this.#checkpoints,
      this.#rework,
      this.#deadLetters,
      this.#retries,
      this.#recordErrors,
      this.#leaseLosses,
      this.#crashedFound,
    ]) {
      counter.inc(base, 0);
    }
    for (const resolution of ['verified-done', 'verified-not-done', 'run-again']) this.#inDoubt.inc({ ...base, resolution }, 0);
  }

  /** A shard this process no longer holds leaves the gauges, so they never grow with the shard count. */
  #forgetShard(base: { job: string; instance: string }, shard: string): void {
    const labels = { ...base, shard };
    for (const gauge of [this.#shardProcessed, this.#rate, this.#inFlight, this.#intervalSeconds, this.#intervalRecords, this.#lastCheckpoint]) {
      gauge.remove(labels);
    }
    this.#intervalStart.delete(shard);
  }
}
