import { LeaseHeldError, UsageError } from '../errors.ts';
import { describeHold } from '../job/guard/hold-text.ts';
import { lostWorkByRun } from '../job/policy/progress-mark.ts';
import { defaultWorker, isStoppedLocalWorker, reapDeadWorkers } from '../job/workers.ts';
import type { HoldInfo, InstanceInfo, RunInfo, Store } from '../store/store.ts';
import { combinedLag, followerLags, formatLag } from './follower-lag.ts';
import { formatAge, formatCount, formatInterval, formatMs, formatParams, formatPosition, formatTime } from './format.ts';
import { parseParams } from './load-job.ts';
import { type CliIo, findInstances, openCliStore } from './shared.ts';
import { renderTable } from './table.ts';

interface QueryOptions {
  store?: string;
  param: string[];
  json?: boolean;
  limit?: number;
}

async function withStore<T>(flag: string | undefined, work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openCliStore(flag, { existing: true });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

const label = (instance: InstanceInfo) => `${instance.job} ${formatParams(instance.params)}`.replace(/ -$/, '');

export async function statusCommand(options: QueryOptions, io: CliIo): Promise<number> {
  return withStore(options.store, async (store) => {
    const instances = await store.listInstances();
    for (const instance of instances) await reapDeadWorkers(store, instance.id);
    const statuses = await Promise.all(instances.map((instance) => store.status(instance.id)));
    const held = await openHolds(store, instances);
    // Ages on the store's clock, which stamped the checkpoints: a skewed host here cannot shift them.
    const now = await store.now();
    // A follower reports how far behind its source's head it is with its heartbeat.
    const lags = await Promise.all(
      statuses.map(async (status) => (status.holders.length === 0 ? [] : followerLags(await store.listRuns(status.instance.id, { limit: 100 })))),
    );
    // Runs still marked running that hold no live lease: left so by the reaping above only when
    // their process is proved alive here (stopped, frozen), so unresponsive, not crashed.
    // Asked only where a shard is marked running that no live lease holds.
    const unresponsive = await Promise.all(
      statuses.map((status) => (status.shards.running > status.holders.length ? unresponsiveRuns(store, status.instance.id, now) : [])),
    );
    if (options.json) {
      const withLag = statuses.map((status, index) => {
        const holds = held.get(status.instance.id);
        const shown = holds === undefined ? status : { ...status, held: holds.map((hold) => ({ ...hold, text: describeHold(hold) })) };
        const quiet = unresponsive[index] ?? [];
        const withQuiet = quiet.length === 0 ? shown : { ...shown, unresponsive: quiet };
        return (lags[index] ?? []).length === 0 ? withQuiet : { ...withQuiet, lag: lags[index] };
      });
      io.stdout.write(`${JSON.stringify(withLag, null, 2)}\n`);
      return 0;
    }
    if (statuses.length === 0) {
      io.stdout.write(`no job has run on ${store.location} yet; start one with: ckpt run <job-file>\n`);
      return 0;
    }
    // A LAG column only when a follower reports one.
    const lagCells = lags.map((lag) => {
      const combined = combinedLag(lag);
      return combined === null ? '-' : formatLag(combined);
    });
    const showLag = lagCells.some((cell) => cell !== '-');
    const rows = statuses.map((status, index) => [
      status.instance.job,
      formatParams(status.instance.params),
      String(status.instance.generation),
      held.has(status.instance.id)
        ? 'held'
        : status.holders.length > 0
          ? 'running'
          : (unresponsive[index] ?? []).length > 0
            ? 'unresponsive'
            : status.instance.status === 'completed'
              ? 'completed'
              : status.processed > 0
                ? 'resumable'
                : 'pending',
      `${status.shards.completed}/${status.shards.total}`,
      formatCount(status.processed),
      formatAge(status.lastCheckpointAt, now),
      [
        ...new Set([
          ...status.holders.map((holder) => holder.worker),
          ...(unresponsive[index] ?? []).map(
            (run) => `${run.worker} (unresponsive${run.stopped ? ', stopped' : ''}: no heartbeat for ${formatMs(now - run.heartbeatAt)}, lease expired)`,
          ),
        ]),
      ].join(', ') || '-',
      ...(showLag ? [lagCells[index] ?? '-'] : []),
    ]);
    const head = ['JOB', 'PARAMS', 'GEN', 'STATUS', 'SHARDS', 'PROCESSED', 'LAST CHECKPOINT', 'HELD BY', ...(showLag ? ['LAG'] : [])];
    io.stdout.write(`${renderTable(head, rows)}\n`);
    io.stdout.write(holdLines(instances, held));
    return 0;
  });
}

/**
 * An instance's runs marked running whose lease expired, yet not reaped: their worker is proved
 * alive on this machine (isAliveLocalWorker), so they are not crashed: a stopped process may go
 * on when continued, and then ends its run itself (lost, if another worker took the shard).
 */
async function unresponsiveRuns(
  store: Store,
  instanceId: number,
  now: number,
): Promise<{ shard: string; worker: string; runId: number; heartbeatAt: number; stopped: boolean }[]> {
  const holders = new Set((await store.holders(instanceId)).map((holder) => `${holder.shard}\u0000${holder.worker}`));
  return (await store.listRuns(instanceId, { limit: 100 }))
    .filter((run) => run.outcome === 'running' && !holders.has(`${run.shard}\u0000${run.worker}`) && run.heartbeatAt < now)
    .map((run) => ({ shard: run.shard, worker: run.worker, runId: run.id, heartbeatAt: run.heartbeatAt, stopped: isStoppedLocalWorker(run.node) }));
}

export async function runsCommand(job: string, options: QueryOptions, io: CliIo): Promise<number> {
  return withStore(options.store, async (store) => {
    const instances = await findInstances(store, job, parseParams(options.param));
    const all = [];
    for (const instance of instances) {
      for (const run of await store.listRuns(instance.id, options.limit === undefined ? {} : { limit: options.limit })) all.push({ instance, run });
    }
    if (options.json) {
      const lost = lostWorkByRun(all.map(({ run }) => run));
      io.stdout.write(
        `${JSON.stringify(
          all.map(({ instance, run }) => ({ job: instance.job, params: instance.params, ...run, ...(lost.has(run.id) ? { redone: lost.get(run.id) } : {}) })),
          null,
          2,
        )}\n`,
      );
      return 0;
    }
    const rows = all.map(({ instance, run }) => {
      const elapsed = (run.endedAt ?? run.heartbeatAt) - run.startedAt;
      return [
        String(run.id),
        instances.length > 1 ? formatParams(instance.params) : String(run.generation),
        run.shard,
        run.worker,
        formatTime(run.startedAt),
        formatMs(Math.max(0, elapsed)),
        run.outcome,
        // Past the start but no position read: the run ended (held, killed) before it resumed.
        run.resumedFrom !== null ? formatPosition(run.resumedFrom) : run.startProcessed > 0 ? '-' : 'start',
        formatCount(run.processed),
        formatRework(run),
        formatCount(run.checkpoints),
        elapsed > 0 ? `${((100 * run.checkpointMs) / elapsed).toFixed(2)} %` : '-',
        formatInterval(intervalOf(run)),
      ];
    });
    io.stdout.write(
      `${renderTable(['RUN', instances.length > 1 ? 'PARAMS' : 'GEN', 'SHARD', 'WORKER', 'STARTED', 'TOOK', 'OUTCOME', 'RESUMED FROM', 'RECORDS', 'REWORK', 'CHECKPOINTS', 'OVERHEAD', 'INTERVAL'], rows)}\n`,
    );
    io.stdout.write(holdLines(instances, await openHolds(store, instances)));
    return 0;
  });
}

export async function eventsCommand(job: string, options: QueryOptions, io: CliIo): Promise<number> {
  return withStore(options.store, async (store) => {
    const instances = await findInstances(store, job, parseParams(options.param));
    const all = [];
    for (const instance of instances) for (const event of await store.listEvents(instance.id)) all.push({ instance, event });
    // In the order they were appended (the chain's): `at` is the writing worker's clock, and a
    // worker whose clock runs ahead must not move its events after later ones.
    all.sort((a, b) => a.event.id - b.event.id);
    const shown = options.limit === undefined ? all : all.slice(-options.limit);
    if (options.json) {
      io.stdout.write(
        `${JSON.stringify(
          shown.map(({ instance, event }) => ({ job: instance.job, params: instance.params, ...event })),
          null,
          2,
        )}\n`,
      );
      return 0;
    }
    const rows = shown.map(({ event }) => {
      const { shard: _shard, ...details } = event.data;
      return [formatTime(event.at), String(event.generation), event.shard ?? '-', event.type, JSON.stringify(details)];
    });
    io.stdout.write(`${renderTable(['AT', 'GEN', 'SHARD', 'EVENT', 'DETAILS'], rows)}\n`);
    return 0;
  });
}

export async function resetCommand(job: string, options: QueryOptions, io: CliIo): Promise<number> {
  return withStore(options.store, async (store) => {
    const instances = await findInstances(store, job, parseParams(options.param));
    if (instances.length > 1) {
      throw new UsageError(
        `${instances.length} instances of ${job} match; pick one with --param k=v (${instances.map((instance) => formatParams(instance.params)).join(' or ')})`,
      );
    }
    const instance = instances[0] as InstanceInfo;
    const holders = await store.holders(instance.id);
    if (holders.length > 0) {
      throw new LeaseHeldError(`cannot reset ${label(instance)}: held by live worker ${holders[0]?.worker}; stop it first`, holders[0]?.worker ?? '');
    }
    // Recorded before the generation moves (a decision is durable before the act): a kill between
    // the two leaves a reset decided and not made, never a new generation that no event explains.
    const data = { from: instance.generation, generation: instance.generation + 1, reason: 'reset', by: defaultWorker() };
    await store.appendEvents(instance.id, instance.generation + 1, [{ type: 'instance:reset', data }]);
    const reset = await store.resetInstance(instance.id, instance.generation);
    if (reset.generation !== instance.generation + 1) {
      throw new LeaseHeldError(
        `cannot reset ${label(instance)}: another process started generation ${reset.generation} at the same moment; see ckpt status`,
        '',
      );
    }
    io.stdout.write(
      `reset ${label(reset)}: generation ${reset.generation} starts from the beginning on its next run (history of generation ${instance.generation} kept)\n`,
    );
    return 0;
  });
}

/** The open holds of each instance's current generation (instances held by nothing are left out). */
async function openHolds(store: Store, instances: InstanceInfo[]): Promise<Map<number, HoldInfo[]>> {
  const held = new Map<number, HoldInfo[]>();
  for (const instance of instances) {
    const open = (await store.holds(instance.id, instance.generation)).filter((hold) => hold.releasedAt === null);
    if (open.length > 0) held.set(instance.id, open);
  }
  return held;
}

/** One line per open hold, under a table: which guard, how far, the approvals, what to run next. */
function holdLines(instances: InstanceInfo[], held: Map<number, HoldInfo[]>): string {
  return instances.flatMap((instance) => (held.get(instance.id) ?? []).map((hold) => `${label(instance)}: ${describeHold(hold)}\n`)).join('');
}

/** The interval a run used, from the stats its checkpoints record. */
function intervalOf(run: RunInfo): { ms: number | null; records: number | null } {
  const { intervalMs, intervalRecords } = run.stats;
  return { ms: typeof intervalMs === 'number' ? intervalMs : null, records: typeof intervalRecords === 'number' ? intervalRecords : null };
}

function formatRework(run: RunInfo): string {
  if (run.rework === null) return '-';
  const ms = run.stats.reworkMs;
  const count = run.stats.reworkAtMost === true ? `≤ ${formatCount(run.rework)}` : formatCount(run.rework);
  return typeof ms === 'number' && run.rework > 0 ? `${count} (${formatMs(ms)})` : count;
}
