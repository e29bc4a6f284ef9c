import { FREE_SHARD_SQL, REAPED_OUTCOME_SQL, type Row, RUN_PROGRESS_COLUMNS, toLiveRun, toRun } from '../rows.ts';
import type { HolderInfo, InstanceInfo, Lease, LeaseStore, LiveRun, ProgressMark, RunInfo, RunOutcome, RunProgress } from '../store.ts';
import { checkChainKeyNow } from './chain-key-check.ts';
import type { SqlChanges, SqlDriver, SqlQueryable } from './sql-driver.ts';

/**
 * Leases and fencing on a SQL server: claims with `FOR UPDATE SKIP LOCKED`, lease times on the
 * database's clock.
 *
 * Invariant: a shard's lease_token only grows, and every write on behalf of a lease (heartbeat,
 * checkpoint, release, inputs) names the token it holds; a write with an older token changes
 * nothing, and a checkpoint with one throws FencedError inside the job's transaction
 * (sql-checkpoints.ts).
 */
export class SqlLeases implements LeaseStore {
  readonly #db: SqlDriver;
  readonly #changes: SqlChanges;

  constructor(driver: SqlDriver, changes: SqlChanges) {
    this.#db = driver;
    this.#changes = changes;
  }

  async now(): Promise<number> {
    return this.#db.syncClock();
  }

  waitForChange(instanceId: number, ms: number, signal?: AbortSignal): Promise<void> {
    return this.#changes.wait(instanceId, ms, signal);
  }

  async reapCrashed(
    instanceId: number,
    isDead: (worker: string, node: string | null) => boolean,
    isAlive: (worker: string, node: string | null) => boolean = () => false,
  ): Promise<RunInfo[]> {
    const { prefix: p, dialect } = this.#db;
    const candidates = await this.#db.rows(
      `SELECT r.id, r.worker, r.worker_node, r.shard_id, sh.lease_expires_at < ${dialect.now} AS expired, ${dialect.distinct('sh.run_id', 'r.id')} AS superseded
       FROM ${p}runs r JOIN ${p}shards sh ON sh.id = r.shard_id WHERE r.instance_id = ? AND r.outcome = 'running'`,
      [instanceId],
    );
    const reaped: RunInfo[] = [];
    let keyChecked = false;
    for (const candidate of candidates) {
      const node = candidate.worker_node === null ? null : String(candidate.worker_node);
      // A worker proved alive here (stopped, say) is not crashed, whatever its lease says.
      if (isAlive(String(candidate.worker), node)) continue;
      const dead = isDead(String(candidate.worker), node);
      // Booleans come back as true/false (PostgreSQL) or 1/0 (MySQL).
      if (!(Number(candidate.expired) === 1 || Number(candidate.superseded) === 1 || dead)) continue;
      // Its crash is logged next (a chained event): a writer whose key may not extend the chain
      // is refused before the run is marked, or the mark would stand with no event telling it.
      if (!keyChecked) await checkChainKeyNow(this.#db, instanceId);
      keyChecked = true;
      const marked = await this.#db.transaction(async (tx) => {
        const run = await this.#reapRun(tx, candidate, dead);
        if (run !== undefined) await this.#changes.notify(tx, instanceId);
        return run;
      });
      if (marked) reaped.push(marked);
    }
    return reaped;
  }

  /** Mark one run crashed and free its shard. The condition is checked again under the row
   * locks, so a heartbeat that landed since keeps its run. */
  async #reapRun(tx: SqlQueryable, candidate: Row, dead: boolean): Promise<RunInfo | undefined> {
    const { prefix: p, dialect } = this.#db;
    const marked = await tx.query(
      dialect.updateJoin(
        `${p}runs r`,
        `${p}shards sh`,
        'sh.id = r.shard_id',
        `outcome = ${REAPED_OUTCOME_SQL.replace('mark_step', 'r.mark_step')}, ended_at = r.heartbeat_at`,
        `r.id = ? AND r.outcome = 'running' AND (sh.lease_expires_at < ${dialect.now} OR ${dialect.distinct('sh.run_id', 'r.id')} OR ?)`,
      ),
      [candidate.id, dead],
    );
    if (marked.affectedRows === 0) return undefined;
    await tx.query(`UPDATE ${p}shards SET ${FREE_SHARD_SQL} WHERE id = ? AND run_id = ?`, [candidate.shard_id, candidate.id]);
    const run = (await tx.query(`SELECT * FROM ${p}runs WHERE id = ?`, [candidate.id])).rows[0];
    return run === undefined ? undefined : toRun(run);
  }

  claim(instance: InstanceInfo, worker: string, leaseMs: number, node?: string): Promise<Lease | null> {
    return this.#db.transaction(async (tx) => {
      const { prefix: p, dialect } = this.#db;
      const now = dialect.now;
      // SKIP LOCKED: workers claiming at the same moment each take a different shard, none waits.
      // Lock the row, update it, read it back (MySQL can neither UPDATE a table it selects from in
      // a subquery nor return what it updated).
      const candidate = (
        await tx.query(
          `SELECT id FROM ${p}shards WHERE instance_id = ? AND generation = ? AND status <> 'completed'
           AND (lease_owner IS NULL OR lease_expires_at < ${now}) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
          [instance.id, instance.generation],
        )
      ).rows[0];
      if (candidate === undefined) return null;
      const shardId = Number(candidate.id);
      await tx.query(
        `UPDATE ${p}shards SET lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = ${now} + ?, status = 'running', updated_at = ${now}
         WHERE id = ?`,
        [worker, leaseMs, shardId],
      );
      const shard = (await tx.query(`SELECT name, lease_token, processed FROM ${p}shards WHERE id = ?`, [shardId])).rows[0] as Row;
      const token = Number(shard.lease_token);
      // A run still marked running on an expired lease is a crashed (or paused) worker: fenced from now on.
      await tx.query(`UPDATE ${p}runs SET outcome = ${REAPED_OUTCOME_SQL}, ended_at = heartbeat_at WHERE shard_id = ? AND outcome = 'running'`, [shardId]);
      const run = await tx.query(
        `INSERT INTO ${p}runs (instance_id, generation, shard_id, shard, worker, worker_node, token, started_at, heartbeat_at, start_processed, mark_processed, stats)
         VALUES (?, ?, ?, ?, ?, ?, ?, ${now}, ${now}, ?, ?, '{}')${dialect.returning ? ' RETURNING id' : ''}`,
        [instance.id, instance.generation, shardId, shard.name, worker, node ?? null, token, shard.processed, shard.processed],
      );
      const runId = insertedId(run);
      await tx.query(`UPDATE ${p}shards SET run_id = ? WHERE id = ?`, [runId, shardId]);
      // Working now: a connection held for notifications goes back to the pool.
      this.#changes.claimed();
      return { instanceId: instance.id, generation: instance.generation, shardId, shard: String(shard.name), worker, token, runId, leaseMs };
    });
  }

  async leaseShard(
    instance: Pick<InstanceInfo, 'id' | 'generation'>,
    shard: { id: number; name: string },
    worker: string,
    leaseMs: number,
  ): Promise<Lease | null> {
    const { prefix: p, dialect } = this.#db;
    return this.#db.transaction(async (tx) => {
      const taken = await tx.query(
        `UPDATE ${p}shards SET lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = ${dialect.now} + ?, run_id = NULL, updated_at = ${dialect.now}
         WHERE id = ? AND instance_id = ? AND generation = ? AND (lease_owner IS NULL OR lease_expires_at < ${dialect.now})`,
        [worker, leaseMs, shard.id, instance.id, instance.generation],
      );
      if (taken.affectedRows === 0) return null;
      const row = (await tx.query(`SELECT lease_token FROM ${p}shards WHERE id = ?`, [shard.id])).rows[0] as Row;
      return {
        instanceId: instance.id,
        generation: instance.generation,
        shardId: shard.id,
        shard: shard.name,
        worker,
        token: Number(row.lease_token),
        runId: 0,
        leaseMs,
      };
    });
  }

  async liveRunOrFence(runId: number): Promise<LiveRun | undefined> {
    const { prefix: p, dialect } = this.#db;
    const held = `SELECT sh.id, sh.instance_id, sh.name, sh.lease_owner, r.worker_node, sh.lease_expires_at < ${dialect.now} AS expired
       FROM ${p}runs r JOIN ${p}shards sh ON sh.id = r.shard_id WHERE r.id = ? AND sh.run_id = r.id AND sh.lease_token = r.token AND sh.lease_owner IS NOT NULL`;
    const [row] = await this.#db.rows(held, [runId]);
    if (row === undefined) return undefined;
    // Booleans come back as true/false (PostgreSQL) or 1/0 (MySQL).
    if (Number(row.expired) !== 1) return toLiveRun(runId, row);
    // Expired: ended under the shard row's lock, if still so (a heartbeat may have just renewed it).
    return this.#db.transaction(async (tx) => {
      const current = (await tx.query(`${held} FOR UPDATE`, [runId])).rows[0];
      if (current === undefined) return undefined;
      if (Number(current.expired) !== 1) return toLiveRun(runId, current);
      await tx.query(`UPDATE ${p}shards SET lease_token = lease_token + 1, ${FREE_SHARD_SQL}, updated_at = ${dialect.now} WHERE id = ?`, [current.id]);
      // Workers waiting on the instance may claim the shard now.
      await this.#changes.notify(tx, Number(current.instance_id));
      return undefined;
    });
  }

  async holders(instanceId: number): Promise<HolderInfo[]> {
    const { prefix: p, dialect } = this.#db;
    const rows = await this.#db.rows(
      `SELECT sh.name, sh.lease_owner, sh.lease_expires_at, r.worker_node FROM ${p}shards sh JOIN ${p}instances i ON i.id = sh.instance_id AND i.generation = sh.generation
       LEFT JOIN ${p}runs r ON r.id = sh.run_id AND r.token = sh.lease_token WHERE sh.instance_id = ? AND sh.status <> 'completed' AND sh.lease_owner IS NOT NULL AND sh.lease_expires_at >= ${dialect.now} ORDER BY sh.id`,
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
    // Matched rows, not changed ones: two beats within one millisecond still find their lease.
    const held = await this.#db.run(`UPDATE ${this.#db.prefix}shards SET lease_expires_at = ${this.#db.dialect.now} + ? WHERE id = ? AND lease_token = ?`, [
      lease.leaseMs,
      lease.shardId,
      lease.token,
    ]);
    await updateRun({ query: (sql, values) => this.#db.run(sql, values) }, this.#db, lease.runId, progress);
    return held.affectedRows === 1;
  }

  /** On the pooled autocommit connection: durable before the run goes past it, whatever its transaction does. */
  async markProgress(lease: Lease, mark: ProgressMark): Promise<void> {
    await this.#db.run(`UPDATE ${this.#db.prefix}runs SET mark_ceiling = ?, mark_step = ? WHERE id = ? AND outcome = 'running'`, [
      mark.ceiling,
      mark.step,
      lease.runId,
    ]);
  }

  async previousRun(lease: Lease): Promise<RunInfo | undefined> {
    const rows = await this.#db.rows(`SELECT * FROM ${this.#db.prefix}runs WHERE shard_id = ? AND id < ? ORDER BY id DESC LIMIT 1`, [
      lease.shardId,
      lease.runId,
    ]);
    return rows[0] === undefined ? undefined : toRun(rows[0]);
  }

  /** End the run and free the shard if this token still holds it. */
  release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    return this.#db.transaction(async (tx) => {
      await tx.query(`UPDATE ${this.#db.prefix}shards SET ${FREE_SHARD_SQL}, updated_at = ${this.#db.dialect.now} WHERE id = ? AND lease_token = ?`, [
        lease.shardId,
        lease.token,
      ]);
      await updateRun(tx, this.#db, lease.runId, run, outcome);
      // Delivered at COMMIT: workers waiting on the instance claim the shard, or see it complete.
      await this.#changes.notify(tx, lease.instanceId);
    });
  }
}

/** The id an INSERT gave its row: MySQL says it, PostgreSQL returns it (`RETURNING id`). */
export function insertedId(result: { rows: Row[]; insertId: number }): number {
  return result.insertId > 0 ? result.insertId : Number(result.rows[0]?.id);
}

/** Progress columns of a run (heartbeat, checkpoint, release); with `outcome`, the run ends. */
export async function updateRun(
  on: SqlQueryable,
  db: Pick<SqlDriver, 'prefix' | 'dialect'>,
  runId: number,
  progress: RunProgress,
  outcome?: RunOutcome,
): Promise<void> {
  // A lease outside any run (leaseShard) has no run to write.
  if (runId === 0) return;
  const sets = [`heartbeat_at = ${db.dialect.now}`];
  const values: unknown[] = [];
  const set = (column: string, value: unknown) => {
    values.push(value);
    sets.push(`${column} = ?`);
  };
  for (const [key, column] of RUN_PROGRESS_COLUMNS) if (progress[key] !== undefined) set(column, progress[key]);
  if (progress.resumedFrom !== undefined) set('resumed_from', JSON.stringify(progress.resumedFrom));
  if (progress.stats !== undefined) set('stats', JSON.stringify(progress.stats));
  if (outcome !== undefined) {
    set('outcome', outcome);
    sets.push(`ended_at = ${db.dialect.now}`);
  }
  values.push(runId);
  await on.query(`UPDATE ${db.prefix}runs SET ${sets.join(', ')} WHERE id = ?`, values);
}
