import { SchemaTooNewError, StoreError, StoreUnavailableError, UsageError } from '../../errors.ts';
import type { JsonObject, JsonValue } from '../../json.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum } from '../checksum.ts';
import { postgresMigrations } from '../migrations/postgres.ts';
import { parseCheckpoint, type Row, toInstance, toRun, toShard } from '../rows.ts';
import type {
  Checkpoint,
  DeadLetter,
  EffectEntry,
  EffectScope,
  FailureHistory,
  HolderInfo,
  InstanceInfo,
  InstanceStatus,
  LatestCheckpoint,
  Lease,
  NewDeadLetter,
  NewEvent,
  ProgressMark,
  RunInfo,
  RunOutcome,
  RunProgress,
  ShardInfo,
  ShardInputs,
  Store,
  StoredEvent,
  Tx,
} from '../store.ts';
import { describeDriverError, isTransientStoreError } from '../transient.ts';
import { createPgPool, type PgPool, type PgPoolClient, type PgQueryable } from './pg-types.ts';
import { PostgresJournal } from './postgres-journal.ts';
import { FROZEN_SESSION_MS, NOW, PostgresLeases } from './postgres-leases.ts';
import { PostgresTx, quoteName } from './postgres-tx.ts';

export interface PostgresStoreOptions {
  /** A `postgres://` URL; the store creates (and closes) its own pool. */
  connectionString?: string;
  /** A ready pool (a `pg.Pool`); the store uses it and leaves it open on close. */
  pool?: PgPool;
  /** Schema holding the store's tables (created if missing); default `checkpointed`. */
  schema?: string;
  /** Connections in the pool the store creates; default 4 (job tx, heartbeat, runner, spare). */
  maxConnections?: number;
  /** Name for messages: the URL without its password. */
  location?: string;
}

export const DEFAULT_PG_SCHEMA = 'checkpointed';

/**
 * The store for many workers on many machines. PostgreSQL is the coordinator: a claim takes a
 * free or expired shard with `FOR UPDATE SKIP LOCKED` and bumps its fencing token; a commit locks
 * the shard row and compares tokens inside the same transaction as the checkpoint and the job's
 * `ctx.tx` writes, so a worker that lost its lease can move neither. Tables are schema-qualified;
 * the job's own `ctx.tx` SQL keeps the connection's default search_path.
 */
export class PostgresStore implements Store {
  readonly location: string;
  readonly #options: PostgresStoreOptions;
  readonly #schema: string;
  /** `"schema".` — prefix of every table name. */
  readonly #s: string;
  #pool: Promise<PgPool> | undefined;
  #closed = false;
  readonly #openTxs = new Set<PostgresTx>();
  readonly #journal: PostgresJournal;
  readonly #leases: PostgresLeases;

  constructor(options: PostgresStoreOptions) {
    if (options.pool === undefined && options.connectionString === undefined) throw new UsageError('a PostgreSQL store needs a connection string or a pool');
    this.#options = options;
    this.#schema = options.schema ?? DEFAULT_PG_SCHEMA;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(this.#schema)) {
      throw new UsageError(`the schema name ${JSON.stringify(this.#schema)} is not valid; use letters, digits and '_' (e.g. ?schema=checkpointed)`);
    }
    this.#s = `${quoteName(this.#schema)}.`;
    this.#journal = new PostgresJournal(this.#s, NOW);
    this.#leases = new PostgresLeases(this.#s);
    this.location = options.location ?? (options.pool ? `postgres (schema ${this.#schema})` : String(options.connectionString));
  }

  #getPool = (): Promise<PgPool> => {
    if (this.#closed) return Promise.reject(new StoreError(`the store ${this.location} is closed`));
    this.#pool ??= (async () => {
      if (this.#options.pool) return this.#options.pool;
      return createPgPool({ connectionString: String(this.#options.connectionString), max: this.#options.maxConnections ?? 4 });
    })();
    return this.#pool;
  };

  /** One statement on any pooled connection; driver errors become the store's. */
  async #q(sql: string, values: unknown[] = [], on?: PgQueryable): Promise<Row[]> {
    try {
      return (await (on ?? (await this.#getPool())).query(sql, values)).rows;
    } catch (error) {
      throw this.#wrap(error);
    }
  }

  #wrap(error: unknown): unknown {
    if (error instanceof StoreError || error instanceof StoreUnavailableError) return error;
    if (isTransientStoreError(error)) {
      return new StoreUnavailableError(
        `the PostgreSQL store ${this.location} is unreachable: ${describeDriverError(error)}; check that the server is up and the URL is right, then run again`,
        { cause: error },
      );
    }
    return error;
  }

  /** Runs `work` in its own transaction on one connection. */
  async #transaction<T>(work: (client: PgPoolClient) => Promise<T>): Promise<T> {
    let client: PgPoolClient;
    try {
      client = await (await this.#getPool()).connect();
    } catch (error) {
      throw this.#wrap(error);
    }
    let broken: Error | undefined;
    const onError = (error: Error) => {
      broken = error;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      // The store's own transactions are a few statements long; one frozen mid-way (its worker
      // stopped) must not keep a shard row locked from every other worker for long.
      await client.query(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [String(FROZEN_SESSION_MS)]);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken ??= rollbackError;
      });
      if (isTransientStoreError(error)) broken ??= error as Error;
      throw this.#wrap(error);
    } finally {
      client.off('error', onError);
      client.release(broken ?? false);
    }
  }

  async migrate(): Promise<void> {
    const supported = postgresMigrations.at(-1)?.id ?? 0;
    try {
      await this.#transaction(async (client) => {
        // Many workers start at once: one migrates, the others wait here and find it done.
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`checkpointed:migrate:${this.#schema}`]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteName(this.#schema)}`);
        await client.query(`CREATE TABLE IF NOT EXISTS ${this.#s}ckpt_schema (version INTEGER NOT NULL)`);
        const current = Number((await client.query(`SELECT max(version) AS version FROM ${this.#s}ckpt_schema`)).rows[0]?.version ?? 0);
        if (current > supported) throw new SchemaTooNewError(current, supported, this.location);
        for (const migration of postgresMigrations) {
          if (migration.id <= current) continue;
          await client.query(migration.sql.replaceAll('{schema}.', this.#s));
          await client.query(`INSERT INTO ${this.#s}ckpt_schema (version) VALUES ($1)`, [migration.id]);
        }
      });
    } catch (error) {
      if (error instanceof SchemaTooNewError || error instanceof StoreError || error instanceof StoreUnavailableError) throw error;
      throw new StoreError(
        `cannot set up the PostgreSQL store ${this.location}: ${describeDriverError(error)}; check the URL, the user's rights and the schema`,
        {
          cause: error,
        },
      );
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const pool = this.#pool;
    for (const tx of this.#openTxs) await tx.end(false).catch(() => undefined);
    this.#closed = true;
    this.#pool = undefined;
    if (pool !== undefined && this.#options.pool === undefined) await (await pool).end().catch(() => undefined);
  }

  async instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    await this.#q(
      `INSERT INTO ${this.#s}instances (job, params_hash, params, version, created_at) VALUES ($1, $2, $3, $4, ${NOW}) ON CONFLICT (job, params_hash) DO NOTHING`,
      [job, paramsHash, JSON.stringify(meta.params), meta.version],
    );
    return toInstance((await this.#q(`SELECT * FROM ${this.#s}instances WHERE job = $1 AND params_hash = $2`, [job, paramsHash]))[0] as Row);
  }

  async resetInstance(instanceId: number, fromGeneration?: number): Promise<InstanceInfo> {
    const rows = await this.#q(
      `UPDATE ${this.#s}instances SET generation = generation + 1, status = 'open', completed_at = NULL
       WHERE id = $1 AND ($2::integer IS NULL OR generation = $2::integer) RETURNING *`,
      [instanceId, fromGeneration ?? null],
    );
    // Another process moved the generation on first: leave it there, say where it is.
    if (rows.length === 0) return toInstance((await this.#q(`SELECT * FROM ${this.#s}instances WHERE id = $1`, [instanceId]))[0] as Row);
    return toInstance(rows[0] as Row);
  }

  async listInstances(job?: string): Promise<InstanceInfo[]> {
    const rows =
      job === undefined
        ? await this.#q(`SELECT * FROM ${this.#s}instances ORDER BY id DESC`)
        : await this.#q(`SELECT * FROM ${this.#s}instances WHERE job = $1 ORDER BY id DESC`, [job]);
    return rows.map(toInstance);
  }

  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    // ORDER BY ordinality keeps shard ids in the job's order, as on SQLite.
    await this.#q(
      `INSERT INTO ${this.#s}shards (instance_id, generation, name, version, updated_at)
       SELECT $1, $2, name, $4, ${NOW} FROM unnest($3::text[]) WITH ORDINALITY AS t(name, n) ORDER BY n
       ON CONFLICT (instance_id, generation, name) DO NOTHING`,
      [instance.id, instance.generation, names, meta.version],
    );
    return this.listShards(instance.id);
  }

  async listShards(instanceId: number): Promise<ShardInfo[]> {
    const rows = await this.#q(
      `SELECT s.* FROM ${this.#s}shards s JOIN ${this.#s}instances i ON i.id = s.instance_id AND i.generation = s.generation WHERE s.instance_id = $1 ORDER BY s.id`,
      [instanceId],
    );
    return rows.map(toShard);
  }

  async setFingerprint(lease: Lease, fingerprint: string | null): Promise<void> {
    await this.#q(`UPDATE ${this.#s}shards SET fingerprint = $1 WHERE id = $2 AND lease_token = $3`, [fingerprint, lease.shardId, lease.token]);
  }

  async setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    await this.#q(`UPDATE ${this.#s}shards SET fingerprint = $1, version = $2, params_hash = $3 WHERE id = $4 AND lease_token = $5`, [
      inputs.fingerprint,
      inputs.version,
      inputs.paramsHash,
      lease.shardId,
      lease.token,
    ]);
  }

  async reapCrashed(instanceId: number, isDead: (worker: string) => boolean): Promise<RunInfo[]> {
    const reaped: RunInfo[] = [];
    for (const candidate of await this.#leases.reapCandidates(this.#any, instanceId)) {
      const dead = isDead(String(candidate.worker));
      if (!(candidate.expired || candidate.superseded || dead)) continue;
      const marked = await this.#transaction((client) => this.#leases.reapRun(client, candidate, dead));
      if (marked) reaped.push(marked);
    }
    return reaped;
  }

  claim(instance: InstanceInfo, worker: string, leaseMs: number): Promise<Lease | null> {
    return this.#transaction((client) => this.#leases.claim(client, instance, worker, leaseMs));
  }

  async holders(instanceId: number): Promise<HolderInfo[]> {
    const rows = await this.#q(
      `SELECT s.name, s.lease_owner, s.lease_expires_at FROM ${this.#s}shards s JOIN ${this.#s}instances i ON i.id = s.instance_id AND i.generation = s.generation
       WHERE s.instance_id = $1 AND s.status <> 'completed' AND s.lease_owner IS NOT NULL AND s.lease_expires_at >= ${NOW} ORDER BY s.id`,
      [instanceId],
    );
    return rows.map((row) => ({ shard: String(row.name), worker: String(row.lease_owner), expiresAt: Number(row.lease_expires_at) }));
  }

  heartbeat(lease: Lease, progress: RunProgress): Promise<boolean> {
    return this.#leases.heartbeat(this.#any, lease, progress);
  }

  markProgress(lease: Lease, mark: ProgressMark): Promise<void> {
    return this.#leases.markProgress(this.#any, lease, mark);
  }

  async latest(lease: Lease): Promise<LatestCheckpoint> {
    const rows = await this.#q(`SELECT * FROM ${this.#s}checkpoints WHERE shard_id = $1 ORDER BY seq DESC LIMIT $2`, [lease.shardId, CHECKPOINT_HISTORY]);
    const corrupt: number[] = [];
    for (const row of rows) {
      const checkpoint = parseCheckpoint(row);
      if (checkpoint && checkpointChecksum(lease.shardId, checkpoint.seq, checkpoint.position, checkpoint.state, checkpoint.processed) === row.checksum) {
        return { checkpoint, corrupt };
      }
      corrupt.push(Number(row.seq));
    }
    return { checkpoint: undefined, corrupt };
  }

  async previousRun(lease: Lease): Promise<RunInfo | undefined> {
    const rows = await this.#q(`SELECT * FROM ${this.#s}runs WHERE shard_id = $1 AND id < $2 ORDER BY id DESC LIMIT 1`, [lease.shardId, lease.runId]);
    return rows[0] === undefined ? undefined : toRun(rows[0]);
  }

  async begin(lease: Lease): Promise<Tx> {
    await this.#getPool();
    const tx = new PostgresTx(lease, this.#getPool, this.location);
    this.#openTxs.add(tx);
    return tx;
  }

  async commit(tx: Tx, checkpoint: Omit<Checkpoint, 'seq' | 'createdAt'>, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    const pgTx = this.#ownTx(tx);
    const { lease } = tx;
    try {
      const saved = await this.#leases.writeCheckpoint(this.#inTx(tx), lease, checkpoint, run);
      await pgTx.end(true);
      return saved;
    } catch (error) {
      await pgTx.end(false).catch(() => undefined);
      throw this.#wrap(pgTx.wrap(error));
    } finally {
      this.#openTxs.delete(pgTx);
    }
  }

  async rollback(tx: Tx): Promise<void> {
    const pgTx = this.#ownTx(tx);
    this.#openTxs.delete(pgTx);
    await pgTx.end(false);
  }

  #ownTx(tx: Tx): PostgresTx {
    if (!(tx instanceof PostgresTx) || !this.#openTxs.has(tx) || !tx.active) throw new StoreError('this transaction is not open on this store');
    return tx;
  }

  release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    return this.#transaction((client) => this.#leases.release(client, lease, outcome, run));
  }

  async completeIfDone(instanceId: number, generation: number): Promise<boolean> {
    const changed = await this.#q(
      `UPDATE ${this.#s}instances SET status = 'completed', completed_at = ${NOW} WHERE id = $1 AND generation = $2 AND status = 'open'
       AND NOT EXISTS (SELECT 1 FROM ${this.#s}shards WHERE instance_id = $1 AND generation = $2 AND status <> 'completed') RETURNING id`,
      [instanceId, generation],
    );
    if (changed.length > 0) return true;
    const rows = await this.#q(`SELECT status FROM ${this.#s}instances WHERE id = $1`, [instanceId]);
    return rows[0]?.status === 'completed';
  }

  /** A pooled connection for one statement, with the store's error handling. */
  get #any(): PgQueryable {
    return { query: async (sql, values) => ({ rows: await this.#q(sql, values), rowCount: null }) };
  }
  /** The job's transaction, with the store's error handling. */
  #inTx(tx: Tx): PgQueryable {
    const pgTx = this.#ownTx(tx);
    return { query: async (sql, values) => ({ rows: await this.#q(sql, values, { query: (text, args) => pgTx.query(text, args) }), rowCount: null }) };
  }

  effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    return this.#journal.get(this.#any, scope, key);
  }
  effectIntent(scope: EffectScope, key: string): Promise<void> {
    return this.#journal.intent(this.#any, scope, key);
  }
  effectDone(scope: EffectScope, key: string, result: JsonValue | null): Promise<void> {
    return this.#journal.done(this.#any, scope, key, result);
  }
  effectFailed(scope: EffectScope, key: string): Promise<void> {
    return this.#journal.failed(this.#any, scope, key);
  }

  addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void> {
    return this.#journal.addDeadLetter(this.#inTx(tx), tx.lease, letter);
  }
  countDeadLetters(lease: Lease): Promise<number> {
    return this.#journal.countDeadLetters(this.#any, lease);
  }
  listDeadLetters(instanceId: number): Promise<DeadLetter[]> {
    return this.#journal.listDeadLetters(this.#any, instanceId);
  }
  async resolveDeadLetter(tx: Tx, id: number): Promise<boolean> {
    const pgTx = this.#ownTx(tx);
    try {
      const deleted = await this.#journal.deleteDeadLetter(this.#inTx(tx), id);
      await pgTx.end(deleted);
      return deleted;
    } catch (error) {
      await pgTx.end(false).catch(() => undefined);
      throw this.#wrap(pgTx.wrap(error));
    } finally {
      this.#openTxs.delete(pgTx);
    }
  }
  noteDeadLetterRetry(id: number, error: string): Promise<void> {
    return this.#journal.noteDeadLetterRetry(this.#any, id, error);
  }

  async appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.#q(
      `INSERT INTO ${this.#s}events (instance_id, generation, run_id, shard, type, at, data)
       SELECT $1, $2, run_id, shard, type, at, data FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[])
         WITH ORDINALITY AS e(run_id, shard, type, at, data, n) ORDER BY n`,
      [
        instanceId,
        generation,
        events.map((event) => event.runId ?? null),
        events.map((event) => event.shard ?? null),
        events.map((event) => event.type),
        events.map((event) => event.at ?? Date.now()),
        events.map((event) => JSON.stringify(event.data)),
      ],
    );
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const rows = await this.#q(`SELECT * FROM ${this.#s}events WHERE instance_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [
      instanceId,
      options.afterId ?? 0,
      options.limit ?? null,
    ]);
    return rows.map((row) => ({
      id: Number(row.id),
      instanceId: Number(row.instance_id),
      generation: Number(row.generation),
      runId: row.run_id === null ? null : Number(row.run_id),
      shard: row.shard === null ? null : String(row.shard),
      type: String(row.type),
      at: Number(row.at),
      data: JSON.parse(String(row.data)) as JsonObject,
    }));
  }

  async failureHistory(instanceId: number): Promise<FailureHistory> {
    const rows = await this.#q(
      `SELECT coalesce(sum(greatest(0, coalesce(ended_at, heartbeat_at) - started_at)), 0) AS running_ms,
              count(*) FILTER (WHERE outcome = 'crashed') AS crashed
       FROM ${this.#s}runs WHERE instance_id = $1`,
      [instanceId],
    );
    return { runningMs: Number(rows[0]?.running_ms ?? 0), crashed: Number(rows[0]?.crashed ?? 0) };
  }

  async listRuns(instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    const rows = await this.#q(`SELECT * FROM ${this.#s}runs WHERE instance_id = $1 ORDER BY id DESC LIMIT $2`, [instanceId, options.limit ?? null]);
    return rows.map(toRun);
  }

  async status(instanceId: number): Promise<InstanceStatus> {
    const instance = toInstance((await this.#q(`SELECT * FROM ${this.#s}instances WHERE id = $1`, [instanceId]))[0] as Row);
    const shards = await this.listShards(instanceId);
    const last = await this.#q(
      `SELECT max(c.created_at) AS at FROM ${this.#s}checkpoints c JOIN ${this.#s}shards s ON s.id = c.shard_id WHERE s.instance_id = $1 AND s.generation = $2`,
      [instanceId, instance.generation],
    );
    return {
      instance,
      shards: {
        total: shards.length,
        completed: shards.filter((shard) => shard.status === 'completed').length,
        running: shards.filter((shard) => shard.status === 'running').length,
      },
      processed: shards.reduce((sum, shard) => sum + shard.processed, 0),
      lastCheckpointAt: last[0]?.at == null ? null : Number(last[0].at),
      holders: await this.holders(instanceId),
    };
  }
}
