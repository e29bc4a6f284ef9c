import { describeHold } from '../../job/guard/hold-text.ts';
import type { ChainHead, DeadLetter, InstanceInfo, InstanceStatus, RunInfo, ShardInfo, Store, StoredEvent } from '../../store/store.ts';
import { type FollowerLag, followerLags } from '../follower-lag.ts';

/** Dead letters the page shows, the newest. */
export const DEAD_LETTERS_SHOWN = 50;

/** Everything the page and /metrics show about one instance, as read at `readAt`. */
export interface InstanceData {
  instance: InstanceInfo;
  shards: ShardInfo[];
  /** All generations, newest first. */
  runs: RunInfo[];
  /** Current generation's newest DEAD_LETTERS_SHOWN, oldest first (never every letter: an instance can hold millions). */
  deadLetters: DeadLetter[];
  /** How many dead letters the current generation holds. */
  deadLetterCount: number;
  /** The newest events, newest first. */
  events: StoredEvent[];
  /** Records in each shard's source (from its runs' start events), by `generation:shard`; absent when unknown. */
  totals: ReadonlyMap<string, number>;
  /** The head of its audit chain (undefined: no chained event yet); the chain check is cached by it. */
  chainHead: ChainHead | undefined;
  readAt: number;
}

export interface Overview {
  location: string;
  /** The newest instances, newest first. */
  statuses: InstanceStatus[];
  /** Older instances left out of `statuses`. */
  older: number;
  /** The lag its running followers last reported, by instance id (instances being worked on only). */
  lags: ReadonlyMap<number, FollowerLag[]>;
  /** What holds each held instance's generation, said as `ckpt status` says it (instances a guard holds only). */
  holds: ReadonlyMap<number, string[]>;
  readAt: number;
}

/** Instances summarised per refresh: a store that keeps years of daily instances stays cheap to watch. */
export const OVERVIEW_INSTANCES = 100;

/** How long a read is shared by every open page (and scrape) before the store is asked again. */
const FRESH_MS = 750;
const RECENT_EVENTS = 200;
const EVENT_BATCH = 20_000;

/** One read of the store: shared while it runs and for a moment after it succeeded. */
class Read<T> {
  readonly data: Promise<T>;
  #doneAt: number | undefined;
  #failed = false;
  constructor(data: Promise<T>) {
    this.data = data;
    data.then(
      () => {
        this.#doneAt = Date.now();
      },
      () => {
        this.#failed = true;
      },
    );
  }
  /** Still running (never start a second one: the event index is read incrementally), or fresh. */
  usable(): boolean {
    if (this.#failed) return false;
    return this.#doneAt === undefined || Date.now() - this.#doneAt < FRESH_MS;
  }
}

/** An instance's event log, read once and then only what was appended since. */
interface EventIndex {
  lastId: number;
  recent: StoredEvent[];
  totals: Map<string, number>;
}

/**
 * Reads the store for the dashboard, never writes to it. Reads are cached for a moment and
 * shared, so ten open pages cost the store what one does; the event log is read incrementally,
 * so a long history is read once, not on every refresh.
 */
export class StoreReader {
  readonly #store: Store;
  readonly #instances = new Map<number, Read<InstanceData>>();
  readonly #events = new Map<number, EventIndex>();
  #overview: Read<Overview> | undefined;

  constructor(store: Store) {
    this.#store = store;
  }

  overview(): Promise<Overview> {
    if (this.#overview === undefined || !this.#overview.usable()) this.#overview = new Read(this.#readOverview());
    return this.#overview.data;
  }

  async instance(id: number): Promise<InstanceData | undefined> {
    const cached = this.#instances.get(id);
    if (cached?.usable()) return cached.data;
    const instance = await this.#listed(id);
    if (instance === undefined) return undefined;
    // Another request may have started the read while this one looked the instance up.
    const again = this.#instances.get(id);
    if (again?.usable()) return again.data;
    const read = new Read(this.#readInstance(instance));
    this.#instances.set(id, read);
    return read.data;
  }

  /** The instance the page shows when none is chosen: the newest one still open, else the newest. */
  async defaultInstanceId(): Promise<number | undefined> {
    const instances = await this.#store.listInstances();
    return (instances.find((instance) => instance.status === 'open') ?? instances[0])?.id;
  }

  // Not through overview(): its status() of every instance would hold up the one asked for.
  async #listed(id: number): Promise<InstanceInfo | undefined> {
    return (await this.#store.listInstances()).find((instance) => instance.id === id);
  }

  async #readOverview(): Promise<Overview> {
    const instances = await this.#store.listInstances();
    const shown = instances.slice(0, OVERVIEW_INSTANCES);
    const statuses = await Promise.all(shown.map((instance) => this.#store.status(instance.id)));
    const held = statuses.filter((status) => status.holders.length > 0);
    const lags = new Map(
      await Promise.all(
        held.map(async (status) => [status.instance.id, followerLags(await this.#store.listRuns(status.instance.id, { limit: 100 }))] as const),
      ),
    );
    // The store's clock (the database's), which stamped leases and checkpoints: a dashboard host
    // whose clock is off must not show live workers dead, or ages an hour out.
    const holds = new Map<number, string[]>();
    for (const status of statuses) {
      const open = (await this.#store.holds(status.instance.id, status.instance.generation)).filter((hold) => hold.releasedAt === null);
      if (open.length > 0) holds.set(status.instance.id, open.map(describeHold));
    }
    return { location: this.#store.location, statuses, older: instances.length - shown.length, lags, holds, readAt: await this.#store.now() };
  }

  async #readInstance(instance: InstanceInfo): Promise<InstanceData> {
    const [shards, runs, deadLetters, deadLetterCount, index, chainHead] = await Promise.all([
      this.#store.listShards(instance.id),
      this.#store.listRuns(instance.id),
      this.#store.listDeadLetters(instance.id, DEAD_LETTERS_SHOWN),
      this.#store.countInstanceDeadLetters(instance.id),
      this.#readEvents(instance.id),
      this.#store.chainHead(instance.id),
    ]);
    return {
      instance,
      shards,
      runs,
      deadLetters,
      deadLetterCount,
      events: [...index.recent].reverse(),
      totals: index.totals,
      chainHead,
      readAt: await this.#store.now(),
    };
  }

  async #readEvents(instanceId: number): Promise<EventIndex> {
    const index = this.#events.get(instanceId) ?? { lastId: 0, recent: [], totals: new Map<string, number>() };
    for (;;) {
      const batch = await this.#store.listEvents(instanceId, { afterId: index.lastId, limit: EVENT_BATCH });
      for (const event of batch) {
        index.lastId = event.id;
        const total = event.data.total;
        if ((event.type === 'run:start' || event.type === 'run:resume') && typeof total === 'number' && event.shard !== null) {
          index.totals.set(`${event.generation}:${event.shard}`, total);
        }
      }
      index.recent.push(...batch.slice(-RECENT_EVENTS));
      if (index.recent.length > RECENT_EVENTS) index.recent.splice(0, index.recent.length - RECENT_EVENTS);
      if (batch.length < EVENT_BATCH) break;
    }
    this.#events.set(instanceId, index);
    return index;
  }
}
