// A PostgreSQL of the test file's own with `wal_level = logical` (logical replication: pgChanges),
// started with the machine's PostgreSQL binaries (initdb + pg_ctl) in a temporary directory on a
// free loopback port, and stopped and removed at the end. PostgreSQL refuses to run as root: when
// we are root, the cluster belongs to the `postgres` OS user and its commands run as that user.
// The shared server is never touched. $CKPT_PG_BIN names the binaries' directory.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { createPgPool, type PgPool } from '../../src/store/postgres/postgres-driver.ts';
import { freePort } from './postgres.ts';

export interface LogicalPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth, loopback only). */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** The directory holding initdb and pg_ctl, or undefined when this machine has none. */
function binaries(): string | undefined {
  if (process.env.CKPT_PG_BIN !== undefined) return process.env.CKPT_PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => Number(name) >= 10 && existsSync(join(root, name, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** false when PostgreSQL binaries are here, else why the logical-replication tests are skipped. */
export function logicalPostgresSkip(): string | false {
  return binaries() === undefined ? 'no PostgreSQL binaries (initdb, pg_ctl) on this machine: set CKPT_PG_BIN' : false;
}

/** `walLevel: 'replica'` starts one as PostgreSQL's default leaves it (to see the refusal). */
export async function startLogicalPostgres(options: { walLevel?: 'logical' | 'replica' } = {}): Promise<LogicalPostgres> {
  const bin = binaries();
  if (bin === undefined) throw new Error('no PostgreSQL binaries');
  const root = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-pg-logical-'));
  const data = join(dir, 'data');
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o700);
  }
  const as = (command: string, args: string[]) =>
    root
      ? execFileSync('runuser', ['-u', 'postgres', '--', join(bin, command), ...args], { stdio: 'pipe' })
      : execFileSync(join(bin, command), args, { stdio: 'pipe' });
  as('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const flags = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    "-c unix_socket_directories=''",
    `-c wal_level=${options.walLevel ?? 'logical'}`,
    '-c max_replication_slots=20',
    '-c max_wal_senders=20',
    '-c fsync=off',
    '-c max_connections=100',
  ].join(' ');
  as('pg_ctl', ['-D', data, '-o', flags, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      try {
        as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already down
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One logically replicating PostgreSQL for the calling test file: started in `before` with a pool
 * of `poolMax` connections on it, both ended in `after`; nothing when `skip` says why not.
 */
export function logicalPostgresPerFile(poolMax: number): { skip: string | false; readonly server: LogicalPostgres; readonly db: PgPool } {
  const skip = logicalPostgresSkip();
  let server: LogicalPostgres | undefined;
  let db: PgPool | undefined;
  before(async () => {
    if (skip !== false) return;
    server = await startLogicalPostgres();
    db = await createPgPool({ connectionString: server.url, max: poolMax });
  });
  after(async () => {
    await db?.end();
    await server?.stop();
  });
  return {
    skip,
    get server() {
      if (server === undefined) throw new Error('the logical PostgreSQL is not started (skipped, or used outside a test)');
      return server;
    },
    get db() {
      if (db === undefined) throw new Error('the logical PostgreSQL is not started (skipped, or used outside a test)');
      return db;
    },
  };
}
