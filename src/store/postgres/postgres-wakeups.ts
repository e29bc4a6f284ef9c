import { idleWait } from '../idle-wait.ts';
import type { SqlChanges, SqlQueryable } from '../sql/sql-driver.ts';
import { NOW, type PgPoolClient, type PostgresDriver, quoteName } from './postgres-driver.ts';

/** The channel on which a schema's releases are announced (the payload is the instance id). */
const channelOf = (driver: PostgresDriver) => `checkpointed:${driver.schema}`;

/**
 * Idle workers wake on PostgreSQL's LISTEN/NOTIFY instead of a poll: a release or reap of a
 * shard (`notifyChange`) wakes every worker waiting on its instance, so a spare worker claims a
 * freed shard at once and `ckpt run` exits as soon as the instance completes. A lease that lapses
 * sends nothing, so a wait also ends at the earliest lease's expiry (on the database's clock).
 * The LISTEN holds one pooled connection while the worker has no shard (given back at its next
 * claim); a notification that arrives between two waits is kept, so none is lost in the gap.
 */
export class PostgresWakeups implements SqlChanges {
  readonly #db: PostgresDriver;
  #client: Promise<PgPoolClient | undefined> | undefined;
  /** Instances announced since their last wait. */
  readonly #pending = new Set<number>();
  readonly #waiting = new Map<number, Set<() => void>>();

  constructor(driver: PostgresDriver) {
    this.#db = driver;
    driver.onClose.push(() => this.stop(true));
  }

  readonly #onNotification = (message: { channel: string; payload?: string }) => {
    if (message.channel !== channelOf(this.#db)) return;
    const instanceId = Number(message.payload);
    const waiters = this.#waiting.get(instanceId);
    if (waiters === undefined || waiters.size === 0) this.#pending.add(instanceId);
    else for (const wake of waiters) wake();
  };

  readonly #onError = () => this.stop(true);

  /** Inside a release's or reap's transaction: delivered at COMMIT, the payload is the instance id. */
  async notify(on: SqlQueryable, instanceId: number): Promise<void> {
    await on.query('SELECT pg_notify($1, $2)', [channelOf(this.#db), String(instanceId)]);
  }

  /** Working now: the connection held for notifications goes back to the pool. */
  claimed(): void {
    this.stop();
  }

  async wait(instanceId: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#pending.delete(instanceId)) return;
    const listening = await this.#listen();
    if (this.#pending.delete(instanceId)) return;
    const untilExpiry = listening ? await this.#untilEarliestExpiry(instanceId) : undefined;
    const waitMs = untilExpiry === undefined ? ms : Math.min(ms, Math.max(0, untilExpiry) + 5);
    const abort = new AbortController();
    const stopWaiting = () => abort.abort();
    signal?.addEventListener('abort', stopWaiting, { once: true });
    const waiters = this.#waiting.get(instanceId) ?? new Set();
    this.#waiting.set(instanceId, waiters);
    waiters.add(stopWaiting);
    try {
      await idleWait(waitMs, abort.signal);
    } finally {
      waiters.delete(stopWaiting);
      signal?.removeEventListener('abort', stopWaiting);
    }
  }

  /** LISTEN on a pooled connection kept for it; false (poll instead) if that fails. */
  async #listen(): Promise<boolean> {
    this.#client ??= (async () => {
      let client: PgPoolClient | undefined;
      try {
        client = await (await this.#db.pool()).connect();
        client.on('notification', this.#onNotification);
        client.on('error', this.#onError);
        await client.query(`LISTEN ${quoteName(channelOf(this.#db))}`);
        return client;
      } catch {
        if (client !== undefined) this.#drop(client, true);
        return undefined;
      }
    })();
    const client = await this.#client;
    if (client === undefined) this.#client = undefined;
    return client !== undefined;
  }

  async #untilEarliestExpiry(instanceId: number): Promise<number | undefined> {
    const rows = await this.#db
      .rows(
        `SELECT min(lease_expires_at) - ${NOW} AS ms FROM ${this.#db.prefix}shards WHERE instance_id = $1 AND status <> 'completed' AND lease_owner IS NOT NULL`,
        [instanceId],
      )
      .catch(() => []);
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? undefined : Number(ms);
  }

  /** Give the LISTEN connection back (UNLISTEN first, unless it is broken). */
  stop(broken = false): void {
    const pending = this.#client;
    this.#client = undefined;
    this.#pending.clear();
    void pending?.then((client) => {
      if (client === undefined) return;
      if (broken) return this.#drop(client, true);
      client
        .query('UNLISTEN *')
        .then(() => this.#drop(client, false))
        .catch(() => this.#drop(client, true));
    });
  }

  #drop(client: PgPoolClient, broken: boolean): void {
    client.off('notification', this.#onNotification);
    client.off('error', this.#onError);
    client.release(broken);
  }
}
