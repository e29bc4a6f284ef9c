import { SchemaTooNewError, StoreError, StoreIdentityError, StoreUnavailableError, UsageError } from '../../errors.ts';
import { missingInstancesError } from '../store-identity.ts';
import { describeDriverError } from '../transient.ts';
import { type PostgresDriver, quoteName } from './postgres-driver.ts';

/**
 * Create or upgrade the store's schema. Many workers start at once: one migrates under an
 * advisory lock, the others wait for it and find the work done. A schema newer than this code
 * (a newer checkpointed wrote it) is refused: writing to it could break what that version relies on.
 */
export async function migratePostgres(driver: PostgresDriver): Promise<void> {
  const supported = postgresMigrations.at(-1)?.id ?? 0;
  const s = driver.prefix;
  try {
    await driver.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`checkpointed:migrate:${driver.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteName(driver.schema)}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}ckpt_schema (version INTEGER NOT NULL)`);
      const current = Number((await client.query(`SELECT max(version) AS version FROM ${s}ckpt_schema`)).rows[0]?.version ?? 0);
      if (current > supported) throw new SchemaTooNewError(current, supported, driver.location);
      for (const migration of postgresMigrations) {
        if (migration.id <= current) continue;
        await client.query(migration.sql.replaceAll('{schema}.', s));
        await client.query(`INSERT INTO ${s}ckpt_schema (version) VALUES ($1)`, [migration.id]);
      }
      // The store-identity rule (store-identity.ts): a chain head whose instance is gone.
      const missing = await client.query(
        `SELECT h.instance_id FROM ${s}chain_heads h WHERE NOT EXISTS (SELECT 1 FROM ${s}instances i WHERE i.id = h.instance_id) ORDER BY h.instance_id LIMIT 6`,
      );
      if (missing.rows.length > 0) {
        const ids = missing.rows.map((row) => Number(row.instance_id));
        throw missingInstancesError(driver.location, ids, 'restore the schema from a backup, or drop it whole to start over (every effect would run again)');
      }
    });
  } catch (error) {
    if (
      error instanceof SchemaTooNewError ||
      error instanceof StoreIdentityError ||
      error instanceof StoreError ||
      error instanceof StoreUnavailableError ||
      error instanceof UsageError
    )
      throw error;
    throw new StoreError(
      `cannot set up the PostgreSQL store ${driver.location}: ${describeDriverError(error)}; check the URL, the user's rights and the schema`,
      { cause: error },
    );
  }
}

/**
 * Numbered schema migrations of the PostgreSQL store. Append only: a released migration is never
 * edited; the store records the highest applied number and refuses a schema with a higher one.
 * `{schema}` is replaced by the store's quoted schema name. Times are epoch milliseconds (BIGINT)
 * taken from the database's clock, so workers on machines with skewed clocks agree on leases.
 */
export const postgresMigrations: readonly { id: number; name: string; sql: string }[] = [
  {
    id: 1,
    name: 'instances, shards, checkpoints, runs, events',
    sql: `
      CREATE TABLE {schema}.instances (
        id BIGSERIAL PRIMARY KEY,
        job TEXT NOT NULL,
        params_hash TEXT NOT NULL,
        params TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 1,
        status TEXT NOT NULL DEFAULT 'open',
        version TEXT,
        created_at BIGINT NOT NULL,
        completed_at BIGINT,
        UNIQUE (job, params_hash)
      );
      CREATE TABLE {schema}.shards (
        id BIGSERIAL PRIMARY KEY,
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        lease_owner TEXT,
        lease_token BIGINT NOT NULL DEFAULT 0,
        lease_expires_at BIGINT NOT NULL DEFAULT 0,
        run_id BIGINT,
        checkpoint_seq BIGINT NOT NULL DEFAULT 0,
        processed BIGINT NOT NULL DEFAULT 0,
        fingerprint TEXT,
        version TEXT,
        updated_at BIGINT NOT NULL,
        UNIQUE (instance_id, generation, name)
      );
      CREATE INDEX shards_claimable ON {schema}.shards (instance_id, generation, id) WHERE status <> 'completed';
      -- position and state stay TEXT: the checksum covers the exact JSON that was written.
      CREATE TABLE {schema}.checkpoints (
        shard_id BIGINT NOT NULL REFERENCES {schema}.shards (id),
        seq BIGINT NOT NULL,
        position TEXT,
        state TEXT NOT NULL,
        processed BIGINT NOT NULL,
        run_id BIGINT,
        created_at BIGINT NOT NULL,
        checksum TEXT NOT NULL,
        PRIMARY KEY (shard_id, seq)
      );
      CREATE TABLE {schema}.runs (
        id BIGSERIAL PRIMARY KEY,
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        shard_id BIGINT NOT NULL REFERENCES {schema}.shards (id),
        shard TEXT NOT NULL,
        worker TEXT NOT NULL,
        token BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        heartbeat_at BIGINT NOT NULL,
        outcome TEXT NOT NULL DEFAULT 'running',
        resumed_from TEXT,
        start_processed BIGINT NOT NULL DEFAULT 0,
        processed BIGINT NOT NULL DEFAULT 0,
        mark_processed BIGINT NOT NULL DEFAULT 0,
        rework BIGINT,
        checkpoints INTEGER NOT NULL DEFAULT 0,
        checkpoint_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        stats TEXT NOT NULL DEFAULT '{}',
        error TEXT
      );
      CREATE INDEX runs_by_instance ON {schema}.runs (instance_id, id);
      CREATE INDEX runs_running ON {schema}.runs (instance_id) WHERE outcome = 'running';
      CREATE INDEX runs_by_shard ON {schema}.runs (shard_id, id);
      CREATE TABLE {schema}.events (
        id BIGSERIAL PRIMARY KEY,
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        run_id BIGINT,
        shard TEXT,
        type TEXT NOT NULL,
        at BIGINT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX events_by_instance ON {schema}.events (instance_id, id);
    `,
  },
  {
    id: 2,
    name: 'dead letters, shard params hash, effect journal',
    sql: `
      ALTER TABLE {schema}.shards ADD COLUMN params_hash TEXT;
      CREATE TABLE {schema}.dead_letters (
        id BIGSERIAL PRIMARY KEY,
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        shard_id BIGINT NOT NULL REFERENCES {schema}.shards (id),
        shard TEXT NOT NULL,
        position TEXT,
        record TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        run_id BIGINT,
        created_at BIGINT NOT NULL
      );
      CREATE INDEX dead_letters_by_instance ON {schema}.dead_letters (instance_id, generation, id);
      CREATE INDEX dead_letters_by_shard ON {schema}.dead_letters (shard_id, generation);
      -- Written in autocommit on a pooled connection, never inside the job's transaction: an
      -- intent must be durable before the effect runs, whatever becomes of the chunk.
      CREATE TABLE {schema}.effects (
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        key TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (instance_id, generation, key)
      );
    `,
  },
  {
    id: 3,
    name: 'progress marks: how far a run may have got',
    sql: `
      ALTER TABLE {schema}.runs ADD COLUMN mark_ceiling BIGINT;
      ALTER TABLE {schema}.runs ADD COLUMN mark_step BIGINT;
    `,
  },
  {
    id: 4,
    name: 'hash chain of the event log',
    // Events already stored keep NULL links: shown, and reported by `ckpt audit` as predating
    // the chain. chain_heads holds each instance's last link; appends lock its row, so
    // concurrent workers make one chain, and deleting the last events shows.
    sql: `
      ALTER TABLE {schema}.events ADD COLUMN seq BIGINT, ADD COLUMN prev_hash TEXT, ADD COLUMN hash TEXT, ADD COLUMN keyed BOOLEAN;
      CREATE TABLE {schema}.chain_heads (
        instance_id BIGINT PRIMARY KEY REFERENCES {schema}.instances (id),
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL
      );
    `,
  },
  {
    id: 5,
    name: "whose code made a shard's checkpoints, and which chunks wrote through ctx.tx",
    // NULL for what an older checkpointed wrote (see the SQLite migration 6).
    sql: `
      ALTER TABLE {schema}.shards ADD COLUMN code TEXT;
      ALTER TABLE {schema}.checkpoints ADD COLUMN wrote_tx BOOLEAN;
    `,
  },
  {
    id: 6,
    name: "where a run's worker runs: machine, PID namespace, process",
    // A hostname is shared by host-network pods and cloned VMs; only a reaper on the same
    // machine and PID namespace may judge a run by its pid (job/workers.ts). Older rows: NULL,
    // judged by their lease alone.
    sql: `
      ALTER TABLE {schema}.runs ADD COLUMN worker_node TEXT;
    `,
  },
  {
    id: 7,
    name: 'guards: effect limits, holds, approvals',
    // A claim is counted against its kind's limit in the claim's own transaction, under the
    // counter row's lock; an approval raises a limit in the transaction of its chained event.
    sql: `
      CREATE TABLE {schema}.effect_counts (
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        kind TEXT NOT NULL,
        used BIGINT NOT NULL DEFAULT 0,
        raised BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (instance_id, generation, kind)
      );
      CREATE TABLE {schema}.holds (
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        required INTEGER NOT NULL,
        round INTEGER NOT NULL,
        held_at BIGINT NOT NULL,
        released_at BIGINT,
        PRIMARY KEY (instance_id, generation, name)
      );
      CREATE TABLE {schema}.approvals (
        id BIGSERIAL PRIMARY KEY,
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        generation INTEGER NOT NULL,
        name TEXT NOT NULL,
        round INTEGER NOT NULL,
        by_name TEXT NOT NULL,
        os_user TEXT,
        reason TEXT NOT NULL,
        raise_by BIGINT,
        at BIGINT NOT NULL,
        UNIQUE (instance_id, generation, name, round, by_name)
      );
    `,
  },
  {
    id: 8,
    name: 'plans made by ckpt plan, and their approvals; rate buckets shared by workers',
    // 7 is left to the limits and approvals of issue 21: migrations are applied in id order.
    sql: `
      CREATE TABLE {schema}.plans (
        id TEXT PRIMARY KEY,
        instance_id BIGINT NOT NULL REFERENCES {schema}.instances (id),
        hash TEXT NOT NULL,
        body TEXT NOT NULL,
        approvals TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
      CREATE INDEX plans_by_instance ON {schema}.plans (instance_id, created_at);
      CREATE TABLE {schema}.rate_buckets (
        name TEXT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        granted INTEGER NOT NULL DEFAULT 0,
        updated_at BIGINT NOT NULL
      );
    `,
  },
  {
    id: 9,
    name: "the run that wrote each effect's intent",
    // A claim that finds another run's intent waits while that run holds its lease, instead of
    // taking an effect still in flight on another worker for one left in doubt by a crash.
    sql: 'ALTER TABLE {schema}.effects ADD COLUMN run_id BIGINT;',
  },
];
