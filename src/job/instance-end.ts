import type { InstanceInfo, Store } from '../store/store.ts';
import type { Emit } from './record/record-run.ts';

/** Events read at a time when looking for the run ends already recorded. */
const BATCH = 20_000;

/**
 * Records how an instance ended, once: called only by the worker whose `completeIfDone` completed
 * it ('now'), so one completion is one `instance:complete`, whoever finished the last shard. A
 * run that completed its shard and was killed before it said so (its commit marked it completed,
 * so no reap finds it) gets its `run:end` here, naming the worker that recorded it: the audit
 * trail shows every run of the generation ending, and the instance completing.
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
    for (let afterId = 0; ; ) {
      const events = await store.listEvents(instance.id, { afterId, limit: BATCH });
      for (const event of events) if (event.type === 'run:end' && event.runId !== null) ended.add(event.runId);
      const last = events.at(-1);
      if (last === undefined || events.length < BATCH) break;
      afterId = last.id;
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
