import { createHash } from 'node:crypto';
import { SchemaTooNewError, StoreError, StoreIdentityError, StoreUnavailableError, UsageError } from '../../errors.ts';
import { foreignTablesError, missingInstancesError, namesCreatedBy } from '../store-identity.ts';
import { describeDriverError } from '../transient.ts';
import { isFatalMysqlError, type MysqlConnection, type MysqlDriver, toResult } from './mysql-driver.ts';

/**
 * Numbered schema migrations of the MySQL/MariaDB store. Append only: a released migration is
 * never edited; the store records the highest applied number and refuses a schema with a higher
 * one. `{p}` is replaced by the table prefix. Times are epoch milliseconds (BIGINT) from the
 * database's clock.
 *
 * MySQL commits every DDL statement by itself, so a migration cannot be one transaction: each
 * statement can run again (CREATE … IF NOT EXISTS; an ALTER that finds its column already there
 * counts as done), and one cut short by a crash is finished by the next migrate. No FOREIGN KEYs: InnoDB checks them with shared locks on the parent row held
 * to the end of the transaction, so a dead letter written early in a long job transaction would
 * hold its instance row against every other worker's update until the checkpoint. Columns that
 * are unique keys are VARCHAR (InnoDB cannot index TEXT whole); the collation is binary, so names
 * compare as exactly as on PostgreSQL and SQLite.
 */
const TABLE = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';

export const mysqlMigrations: readonly { id: number; name: string; statements: string[] }[] = [
  {
    id: 1,
    name: 'instances, shards, checkpoints, runs, events, dead letters, effect journal',
    statements: [
      `CREATE TABLE IF NOT EXISTS {p}instances (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        job VARCHAR(255) NOT NULL,
        params_hash VARCHAR(128) NOT NULL,
        params LONGTEXT NOT NULL,
        generation INT NOT NULL DEFAULT 1,
        status VARCHAR(16) NOT NULL DEFAULT 'open',
        version TEXT,
        created_at BIGINT NOT NULL,
        completed_at BIGINT,
        UNIQUE KEY instance_key (job, params_hash)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS {p}shards (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        name VARCHAR(512) NOT NULL,
        status VARCHAR(16) NOT NULL DEFAULT 'pending',
        lease_owner VARCHAR(255),
        lease_token BIGINT NOT NULL DEFAULT 0,
        lease_expires_at BIGINT NOT NULL DEFAULT 0,
        run_id BIGINT,
        checkpoint_seq BIGINT NOT NULL DEFAULT 0,
        processed BIGINT NOT NULL DEFAULT 0,
        fingerprint TEXT,
        version TEXT,
        params_hash VARCHAR(128),
        updated_at BIGINT NOT NULL,
        UNIQUE KEY shard_key (instance_id, generation, name),
        KEY shards_claimable (instance_id, generation, id)
      ) ${TABLE}`,
      // position and state stay text: the checksum covers the exact JSON that was written.
      `CREATE TABLE IF NOT EXISTS {p}checkpoints (
        shard_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        position LONGTEXT,
        state LONGTEXT NOT NULL,
        processed BIGINT NOT NULL,
        run_id BIGINT,
        created_at BIGINT NOT NULL,
        checksum VARCHAR(128) NOT NULL,
        PRIMARY KEY (shard_id, seq)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS {p}runs (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        shard_id BIGINT NOT NULL,
        shard VARCHAR(512) NOT NULL,
        worker VARCHAR(255) NOT NULL,
        token BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        heartbeat_at BIGINT NOT NULL,
        outcome VARCHAR(16) NOT NULL DEFAULT 'running',
        resumed_from LONGTEXT,
        start_processed BIGINT NOT NULL DEFAULT 0,
        processed BIGINT NOT NULL DEFAULT 0,
        mark_processed BIGINT NOT NULL DEFAULT 0,
        rework BIGINT,
        checkpoints INT NOT NULL DEFAULT 0,
        checkpoint_ms DOUBLE NOT NULL DEFAULT 0,
        stats LONGTEXT NOT NULL,
        error TEXT,
        KEY runs_by_instance (instance_id, id),
        KEY runs_running (instance_id, outcome),
        KEY runs_by_shard (shard_id, id)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS {p}events (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        run_id BIGINT,
        shard VARCHAR(512),
        type VARCHAR(64) NOT NULL,
        at BIGINT NOT NULL,
        data LONGTEXT NOT NULL,
        KEY events_by_instance (instance_id, id)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS {p}dead_letters (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        shard_id BIGINT NOT NULL,
        shard VARCHAR(512) NOT NULL,
        position LONGTEXT,
        record LONGTEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INT NOT NULL,
        run_id BIGINT,
        created_at BIGINT NOT NULL,
        KEY dead_letters_by_instance (instance_id, generation, id),
        KEY dead_letters_by_shard (shard_id, generation)
      ) ${TABLE}`,
      // Keyed by the sha256 of the effect key: a key (shard, position, step name) can be longer
      // than an index allows. Written in autocommit, never inside the job's transaction.
      `CREATE TABLE IF NOT EXISTS {p}effects (
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        key_hash CHAR(64) NOT NULL,
        effect_key LONGTEXT NOT NULL,
        status VARCHAR(16) NOT NULL,
        result LONGTEXT,
        attempts INT NOT NULL DEFAULT 0,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (instance_id, generation, key_hash)
      ) ${TABLE}`,
    ],
  },
  {
    id: 2,
    name: 'progress marks: how far a run may have got',
    statements: ['ALTER TABLE {p}runs ADD COLUMN mark_ceiling BIGINT NULL, ADD COLUMN mark_step BIGINT NULL'],
  },
  {
    id: 3,
    name: 'hash chain of the event log',
    // Events already stored keep NULL links: shown, and reported by `ckpt audit` as predating the
    // chain. chain_heads holds each instance's last link; appends lock its row, so concurrent
    // workers make one chain, and deleting the last events shows. The ALTER is one atomic DDL
    // statement; re-run after a crash it meets its own columns (see alreadyApplied).
    statements: [
      'ALTER TABLE {p}events ADD COLUMN seq BIGINT NULL, ADD COLUMN prev_hash VARCHAR(64) NULL, ADD COLUMN hash VARCHAR(64) NULL, ADD COLUMN keyed TINYINT NULL',
      `CREATE TABLE IF NOT EXISTS {p}chain_heads (
        instance_id BIGINT NOT NULL PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash VARCHAR(64) NOT NULL
      ) ${TABLE}`,
    ],
  },
  {
    id: 4,
    name: "whose code made a shard's checkpoints, and which chunks wrote through ctx.tx",
    // NULL for what an older checkpointed wrote (see the SQLite migration 6). One ALTER per
    // table, each atomic; re-run after a crash, it meets its column (see alreadyApplied).
    statements: ['ALTER TABLE {p}shards ADD COLUMN code TEXT NULL', 'ALTER TABLE {p}checkpoints ADD COLUMN wrote_tx TINYINT NULL'],
  },
  {
    id: 5,
    name: "where a run's worker runs: machine, PID namespace, process",
    // A hostname is shared by host-network pods and cloned VMs; only a reaper on the same
    // machine and PID namespace may judge a run by its pid (job/workers.ts). Older rows: NULL,
    // judged by their lease alone.
    statements: ['ALTER TABLE {p}runs ADD COLUMN worker_node VARCHAR(255) NULL'],
  },
  {
    id: 6,
    name: 'guards: effect limits, holds, approvals',
    // A claim is counted against its kind's limit in the claim's own transaction, under the
    // counter row's lock; an approval raises a limit in the transaction of its chained event.
    statements: [
      `CREATE TABLE IF NOT EXISTS {p}effect_counts (
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        kind VARCHAR(255) NOT NULL,
        used BIGINT NOT NULL DEFAULT 0,
        raised BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (instance_id, generation, kind)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS {p}holds (
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        name VARCHAR(255) NOT NULL,
        kind VARCHAR(16) NOT NULL,
        detail TEXT NOT NULL,
        required INT NOT NULL,
        round INT NOT NULL,
        held_at BIGINT NOT NULL,
        released_at BIGINT NULL,
        PRIMARY KEY (instance_id, generation, name)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS {p}approvals (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        instance_id BIGINT NOT NULL,
        generation INT NOT NULL,
        name VARCHAR(255) NOT NULL,
        round INT NOT NULL,
        by_name VARCHAR(255) NOT NULL,
        os_user VARCHAR(255) NULL,
        reason TEXT NOT NULL,
        raise_by BIGINT NULL,
        at BIGINT NOT NULL,
        UNIQUE KEY approvals_once (instance_id, generation, name, round, by_name)
      ) ${TABLE}`,
    ],
  },
  {
    id: 7,
    name: 'plans made by ckpt plan, and their approvals; rate buckets shared by workers',
    // 6 is left to the limits and approvals of issue 21: migrations are applied in id order.
    statements: [
      `CREATE TABLE IF NOT EXISTS {p}plans (
        id VARCHAR(64) NOT NULL PRIMARY KEY,
        instance_id BIGINT NOT NULL,
        hash VARCHAR(64) NOT NULL,
        body LONGTEXT NOT NULL,
        approvals MEDIUMTEXT NOT NULL,
        created_at BIGINT NOT NULL,
        KEY {p}plans_by_instance (instance_id, created_at)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS {p}rate_buckets (
        name VARCHAR(255) NOT NULL PRIMARY KEY,
        tokens DOUBLE NOT NULL,
        updated_at BIGINT NOT NULL
      ) ${TABLE}`,
    ],
  },
  {
    id: 8,
    name: "the run that wrote each effect's intent",
    // A claim that finds another run's intent waits while that run holds its lease, instead of
    // taking an effect still in flight on another worker for one left in doubt by a crash.
    statements: ['ALTER TABLE {p}effects ADD COLUMN run_id BIGINT NULL'],
  },
];

/**
 * Bring the tables up to the newest migration, or refuse a schema newer than this code knows
 * (a newer checkpointed wrote it: writing to it could break what that version relies on). Many
 * workers start at once: a named lock (GET_LOCK, held by this connection) lets one migrate while
 * the others wait, then find it done.
 */
export async function migrateMysql(driver: MysqlDriver): Promise<void> {
  try {
    await migrateUnderLock(driver);
  } catch (error) {
    if (error instanceof SchemaTooNewError || error instanceof StoreIdentityError || error instanceof StoreError || error instanceof UsageError) throw error;
    const wrapped = driver.wrap(error);
    if (wrapped instanceof StoreUnavailableError) throw wrapped;
    throw new StoreError(`cannot set up the MySQL store ${driver.location}: ${describeDriverError(error)}; check the URL, the user's rights and the database`, {
      cause: error,
    });
  }
}

/**
 * Where no `{p}schema` table exists, nothing of ours was ever created under this prefix (the
 * schema table is created first, so a migration cut short leaves it): tables with our names are
 * another application's (an empty `?prefix=` and a job's own `runs`). Migration 1's
 * `CREATE TABLE IF NOT EXISTS` would adopt them and later ones `ALTER` them, so the store is
 * refused before anything is written.
 */
async function refuseForeignTables(driver: MysqlDriver, connection: MysqlConnection): Promise<void> {
  const p = driver.prefix;
  const ours = namesCreatedBy(mysqlMigrations.flatMap((migration) => migration.statements.map((statement) => statement.replaceAll('{p}', p))));
  const existing = toResult(
    await connection.query(
      'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE ? ORDER BY table_name',
      [`${p.replace(/_/g, '\\_')}%`],
    ),
  ).rows.map((row) => String(row.name));
  if (existing.includes(`${p}schema`)) return;
  const found = existing.filter((name) => ours.has(name));
  if (found.length > 0) {
    throw foreignTablesError(driver.location, found, `choose a ?prefix= that names none of the database's tables (the default is ckpt_)`);
  }
}

/**
 * MySQL has no `ADD COLUMN IF NOT EXISTS` (MariaDB has): an ALTER that a crash cut off from its
 * version row finds its column or index there when it runs again, and that is success.
 */
function alreadyApplied(error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== 'ER_DUP_FIELDNAME' && code !== 'ER_DUP_KEYNAME') throw error;
}

async function migrateUnderLock(driver: MysqlDriver): Promise<void> {
  const supported = mysqlMigrations.at(-1)?.id ?? 0;
  const p = driver.prefix;
  const lockName = `ckpt:${createHash('sha256').update(`${driver.database}.${p}`).digest('hex').slice(0, 40)}`;
  const connection = await (await driver.pool()).getConnection();
  let broken = false;
  try {
    const locked = toResult(await connection.query('SELECT GET_LOCK(?, 60) AS locked', [lockName])).rows[0]?.locked;
    if (Number(locked) !== 1) throw new Error(`another process held the migration lock ${lockName} for 60 s`);
    try {
      await refuseForeignTables(driver, connection);
      await connection.query(`CREATE TABLE IF NOT EXISTS ${p}schema (version INT NOT NULL) ${TABLE}`);
      const current = Number(toResult(await connection.query(`SELECT max(version) AS version FROM ${p}schema`)).rows[0]?.version ?? 0);
      if (current > supported) throw new SchemaTooNewError(current, supported, driver.location);
      for (const migration of mysqlMigrations) {
        if (migration.id <= current) continue;
        for (const statement of migration.statements) await connection.query(statement.replaceAll('{p}', p)).catch(alreadyApplied);
        await connection.query(`INSERT INTO ${p}schema (version) VALUES (?)`, [migration.id]);
      }
      // The store-identity rule (store-identity.ts): a chain head whose instance is gone. MySQL
      // tables have no foreign keys here, so the instances can be emptied while the log stays.
      const missing = toResult(
        await connection.query(
          `SELECT h.instance_id FROM ${p}chain_heads h WHERE NOT EXISTS (SELECT 1 FROM ${p}instances i WHERE i.id = h.instance_id) ORDER BY h.instance_id LIMIT 6`,
        ),
      ).rows;
      if (missing.length > 0) {
        const ids = missing.map((row) => Number(row.instance_id));
        throw missingInstancesError(
          driver.location,
          ids,
          `restore the ${p}* tables from a backup, or drop them all to start over (every effect would run again)`,
        );
      }
    } finally {
      await connection.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => {
        broken = true;
      });
    }
  } catch (error) {
    broken ||= isFatalMysqlError(error);
    throw error;
  } finally {
    if (broken) connection.destroy();
    else connection.release();
  }
}
