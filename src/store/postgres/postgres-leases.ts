import { idleWait } from '../idle-wait.ts';
import { REAPED_OUTCOME_SQL, type Row, RUN_PROGRESS_COLUMNS, toRun } from '../rows.ts';
import type { HolderInfo, InstanceInfo, Lease, LeaseStore, ProgressMark, RunInfo, RunOutcome, RunProgress } from '../store.ts';
import { NOW, type PgPoolClient, type PgQueryable, type PostgresDriver, quoteName } from './postgres-driver.ts';

/**
 * Leases and fencing on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED`, lease times on the
 * database's clock.
 *
 * Invariant: a shard's lease_token only grows, and every write on behalf of a lease (heartbeat,
 * checkpoint, release, inputs) names the token it holds; a write with an older token changes
 * nothing, and a checkpoint with one throws FencedError inside the job's transaction
 * (postgres-checkpoints.ts).
 */
export class PostgresLeases implements LeaseStore {
  readonly #db: PostgresDriver;
  readonly #wakeups: PostgresWakeups;

  constructor(driver: PostgresDriver) {
    this.#db = driver;
    this.#wakeups = new PostgresWakeups(driver);
  }

  async now(): Promise<number> {
    return this.#db.syncClock();
  }

  waitForChange(instanceId: number, ms: number, signal?: AbortSignal): Promise<void> {
    return this.#wakeups.wait(instanceId, ms, signal);
  }

  async reapCrashed(instanceId: number, isDead: (worker: string, node: string | null) => boolean): Promise<RunInfo[]> {
    const s = this.#db.s;
    const candidates = await this.#db.query(
      `SELECT r.id, r.worker, r.worker_node, r.shard_id, sh.lease_expires_at < ${NOW} AS expired, sh.run_id IS DISTINCT FROM r.id AS superseded
       FROM ${s}runs r JOIN ${s}shards sh ON sh.id = r.shard_id WHERE r.instance_id = $1 AND r.outcome = 'running'`,
      [instanceId],
    );
    const reaped: RunInfo[] = [];
    for (const candidate of candidates) {
      const dead = isDead(String(candidate.worker), candidate.worker_node === null ? null : String(candidate.worker_node));
      if (!(candidate.expired || candidate.superseded || dead)) continue;
      const marked = await this.#db.transaction(async (client) => {
        const run = await this.#reapRun(client, candidate, dead);
        if (run !== undefined) await notifyChange(client, this.#db, instanceId);
        return run;
      });
      if (marked) reaped.push(marked);
    }
    return reaped;
  }

  /** Mark one run crashed and free its shard. The condition is checked again under the row
   * lock, so a heartbeat that landed since keeps its run. */
  async #reapRun(tx: PgQueryable, candidate: Row, dead: boolean): Promise<RunInfo | undefined> {
    const s = this.#db.s;
    const runs = await tx.query(
      `UPDATE ${s}runs r SET outcome = ${REAPED_OUTCOME_SQL.replace('mark_step', 'r.mark_step')}, ended_at = r.heartbeat_at FROM ${s}shards sh
       WHERE r.id = $1 AND r.outcome = 'running' AND sh.id = r.shard_id AND (sh.lease_expires_at < ${NOW} OR sh.run_id IS DISTINCT FROM r.id OR $2::boolean)
       RETURNING r.*`,
      [candidate.id, dead],
    );
    if (runs.rows.length === 0) return undefined;
    await tx.query(
      `UPDATE ${s}shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END
       WHERE id = $1 AND run_id = $2`,
      [candidate.shard_id, candidate.id],
    );
    return toRun(runs.rows[0] as Row);
  }

  claim(instance: InstanceInfo, worker: string, leaseMs: number, node?: string): Promise<Lease | null> {
    return this.#db.transaction(async (tx) => {
      const s = this.#db.s;
      // SKIP LOCKED: workers claiming at the same moment each take a different shard, none waits.
      const claimed = await tx.query(
        `WITH candidate AS (
           SELECT id FROM ${s}shards WHERE instance_id = $1 AND generation = $2 AND status <> 'completed'
             AND (lease_owner IS NULL OR lease_expires_at < ${NOW}) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE ${s}shards sh SET lease_owner = $3, lease_token = sh.lease_token + 1, lease_expires_at = ${NOW} + $4, status = 'running', updated_at = ${NOW}
         FROM candidate WHERE sh.id = candidate.id RETURNING sh.*`,
        [instance.id, instance.generation, worker, leaseMs],
      );
      const shard = claimed.rows[0];
      if (shard === undefined) return null;
      const shardId = Number(shard.id);
      const token = Number(shard.lease_token);
      // A run still marked running on an expired lease is a crashed (or paused) worker: fenced from now on.
      await tx.query(`UPDATE ${s}runs SET outcome = ${REAPED_OUTCOME_SQL}, ended_at = heartbeat_at WHERE shard_id = $1 AND outcome = 'running'`, [shardId]);
      const run = await tx.query(
        `INSERT INTO ${s}runs (instance_id, generation, shard_id, shard, worker, worker_node, token, started_at, heartbeat_at, start_processed, mark_processed)
         VALUES ($1, $2, $3, $4, $5, $8, $6, ${NOW}, ${NOW}, $7, $7) RETURNING id`,
        [instance.id, instance.generation, shardId, shard.name, worker, token, shard.processed, node ?? null],
      );
      const runId = Number(run.rows[0]?.id);
      await tx.query(`UPDATE ${s}shards SET run_id = $1 WHERE id = $2`, [runId, shardId]);
      // Working now: the connection held for notifications goes back to the pool.
      this.#wakeups.stop();
      return { instanceId: instance.id, generation: instance.generation, shardId, shard: String(shard.name), worker, token, runId, leaseMs };
    });
  }

  async holders(instanceId: number): Promise<HolderInfo[]> {
    const s = this.#db.s;
    const rows = await this.#db.query(
      `SELECT sh.name, sh.lease_owner, sh.lease_expires_at, r.worker_node FROM ${s}shards sh JOIN ${s}instances i ON i.id = sh.instance_id AND i.generation = sh.generation
       LEFT JOIN ${s}runs r ON r.id = sh.run_id WHERE sh.instance_id = $1 AND sh.status <> 'completed' AND sh.lease_owner IS NOT NULL AND sh.lease_expires_at >= ${NOW} ORDER BY sh.id`,
      [instanceId],
    );
    return rows.map((row) => ({
      shard: String(row.name),
      worker: String(row.lease_owner),
      node: row.worker_node === null ? null : String(row.worker_node),
      expiresAt: Number(row.lease_expires_at),
    }));
  }

  /** Extend the lease if this token still holds it; record progress either way; keep the run's open transaction from looking lost. */
  async heartbeat(lease: Lease, progress: RunProgress): Promise<boolean> {
    for (const tx of this.#db.openTxs) if (tx.lease.runId === lease.runId) tx.touch();
    const held = await this.#db.query(`UPDATE ${this.#db.s}shards SET lease_expires_at = ${NOW} + $1 WHERE id = $2 AND lease_token = $3 RETURNING id`, [
      lease.leaseMs,
      lease.shardId,
      lease.token,
    ]);
    await updateRun(this.#db.any, this.#db.s, lease.runId, progress);
    return held.length === 1;
  }

  /** On the pooled autocommit connection: durable before the run goes past it, whatever its transaction does. */
  async markProgress(lease: Lease, mark: ProgressMark): Promise<void> {
    await this.#db.query(`UPDATE ${this.#db.s}runs SET mark_ceiling = $1, mark_step = $2 WHERE id = $3 AND outcome = 'running'`, [
      mark.ceiling,
      mark.step,
      lease.runId,
    ]);
  }

  async previousRun(lease: Lease): Promise<RunInfo | undefined> {
    const rows = await this.#db.query(`SELECT * FROM ${this.#db.s}runs WHERE shard_id = $1 AND id < $2 ORDER BY id DESC LIMIT 1`, [lease.shardId, lease.runId]);
    return rows[0] === undefined ? undefined : toRun(rows[0]);
  }

  /** End the run and free the shard if this token still holds it. */
  release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    return this.#db.transaction(async (tx) => {
      await tx.query(
        `UPDATE ${this.#db.s}shards SET lease_owner = NULL, lease_expires_at = 0, status = CASE WHEN status = 'completed' THEN status ELSE 'pending' END, updated_at = ${NOW}
         WHERE id = $1 AND lease_token = $2`,
        [lease.shardId, lease.token],
      );
      await updateRun(tx, this.#db.s, lease.runId, run, outcome);
      // Delivered at COMMIT: workers waiting on the instance claim the shard, or see it complete.
      await notifyChange(tx, this.#db, lease.instanceId);
    });
  }
}

/** The channel on which a schema's releases are announced (the payload is the instance id). */
const channelOf = (driver: PostgresDriver) => `checkpointed:${driver.schema}`;

function notifyChange(on: PgQueryable, driver: PostgresDriver, instanceId: number): Promise<unknown> {
  return on.query('SELECT pg_notify($1, $2)', [channelOf(driver), String(instanceId)]);
}

/**
 * Idle workers wake on PostgreSQL's LISTEN/NOTIFY instead of a poll: a release or reap of a
 * shard (`notifyChange`) wakes every worker waiting on its instance, so a spare worker claims a
 * freed shard at once and `ckpt run` exits as soon as the instance completes. A lease that lapses
 * sends nothing, so a wait also ends at the earliest lease's expiry (on the database's clock).
 * The LISTEN holds one pooled connection while the worker has no shard (given back at its next
 * claim); a notification that arrives between two waits is kept, so none is lost in the gap.
 */
class PostgresWakeups {
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
      .query(
        `SELECT min(lease_expires_at) - ${NOW} AS ms FROM ${this.#db.s}shards WHERE instance_id = $1 AND status <> 'completed' AND lease_owner IS NOT NULL`,
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

/** Progress columns of a run (heartbeat, checkpoint, release); with `outcome`, the run ends. */
export async function updateRun(on: PgQueryable, s: string, runId: number, progress: RunProgress, outcome?: RunOutcome): Promise<void> {
  const sets = [`heartbeat_at = ${NOW}`];
  const values: unknown[] = [];
  const set = (column: string, value: unknown) => {
    values.push(value);
    sets.push(`${column} = $${values.length}`);
  };
  for (const [key, column] of RUN_PROGRESS_COLUMNS) if (progress[key] !== undefined) set(column, progress[key]);
  if (progress.resumedFrom !== undefined) set('resumed_from', JSON.stringify(progress.resumedFrom));
  if (progress.stats !== undefined) set('stats', JSON.stringify(progress.stats));
  if (outcome !== undefined) {
    set('outcome', outcome);
    sets.push(`ended_at = ${NOW}`);
  }
  values.push(runId);
  await on.query(`UPDATE ${s}runs SET ${sets.join(', ')} WHERE id = $${values.length}`, values);
}
