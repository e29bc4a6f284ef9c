import { setTimeout as sleep } from 'node:timers/promises';
import type { InstanceInfo, Store } from '../store/store.ts';
import type { Emit } from './record/record-run.ts';
import { isDeadLocalWorker } from './workers.ts';

/** Events read at a time when looking for the run ends already recorded. */
const BATCH = 20_000;

/**
 * How long the completing worker waits for another worker's completed run to record its own end,
 * which a live worker does within milliseconds of its shard's last commit (seconds on a machine
 * loaded enough); then the run is presumed killed in between, and its end is recorded for it.
 */
const OWN_END_GRACE_MS = 5_000;
const OWN_END_POLL_MS = 50;

/**
 * Records how an instance ended, once: called only by the worker whose `completeIfDone` completed
 * it ('now'), so one completion is one `instance:complete`, whoever finished the last shard. A
 * run that completed its shard and was killed before it said so (its commit marked it completed,
 * so no reap finds it) gets its `run:end` here, naming the worker that recorded it: the audit
 * trail shows every run of the generation ending, and the instance completing. A worker still
 * alive is left to record its own end (up to OWN_END_GRACE_MS).
 */
export async function recordInstanceEnd(input: {
  store: Store;
  instance: InstanceInfo;
  job: string;
  /** Runs of this process: they recorded their own end. */
  ownRuns: ReadonlySet<number>;
  worker: string;
  emit: Emit;
}): Promise<void> {
  const { store, instance, emit } = input;
  const runs = await store.listRuns(instance.id, { limit: 1_000_000 });
  const others = runs.filter((run) => run.generation === instance.generation && run.outcome === 'completed' && !input.ownRuns.has(run.id));
  if (others.length > 0) {
    const ended = new Set<number>();
    let afterId = 0;
    const readEnds = async () => {
      for (;;) {
        const events = await store.listEvents(instance.id, { afterId, limit: BATCH });
        for (const event of events) if (event.type === 'run:end' && event.runId !== null) ended.add(event.runId);
        const last = events.at(-1);
        if (last !== undefined) afterId = last.id;
        if (last === undefined || events.length < BATCH) return;
      }
    };
    await readEnds();
    // A completed run with no run:end yet may be a live worker between the commit that completed
    // its shard and its own run:end (a few writes later): give it the time to say so itself, or
    // its run would end twice in the audit trail. A worker seen dead on this machine never will.
    const mayStillEnd = () => others.some((run) => !ended.has(run.id) && !isDeadLocalWorker(run.worker, run.node));
    for (const deadline = Date.now() + OWN_END_GRACE_MS; mayStillEnd() && Date.now() < deadline; ) {
      await sleep(OWN_END_POLL_MS);
      await readEnds();
    }
    for (const run of others.reverse()) {
      if (ended.has(run.id)) continue;
      await emit(
        'run:end',
        { shard: run.shard, runId: run.id, outcome: 'completed', processed: run.markProcessed, position: null, recordedBy: input.worker },
        run.id,
      );
    }
  }
  await emit('instance:complete', { job: input.job, generation: instance.generation });
}
