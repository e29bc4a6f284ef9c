// A real MySQL/MariaDB for the tests, in this order: $MYSQL_URL; else a server answering on
// 127.0.0.1:3306 (root, no password, database `test`); else a throwaway `mariadbd` started in a
// temporary directory when the binary is installed; else none, and the MySQL tests are skipped
// with one line saying why. CKPT_TEST_MYSQL_PROBE=host:port probes another address instead of
// 127.0.0.1:3306 (a port nothing answers on proves the mariadbd path).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createMysqlPool, type MysqlPool, toResult } from '../../src/store/mysql/mysql-driver.ts';
import { freePort } from './postgres.ts';

const MARIADBD = process.env.CKPT_TEST_MARIADBD ?? '/usr/sbin/mariadbd';
const INSTALL_DB = ['/usr/bin/mariadb-install-db', '/usr/bin/mysql_install_db'].find((path) => existsSync(path));

/** What the test run has: a server URL, or the reason there is none. */
export type MysqlAvailability = { url: string; source: string } | { skip: string };

function portAnswers(host: string, port: number, ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface ThrowawayMariadb {
  url: string;
  port: number;
  /** Clean shutdown (SIGTERM): clients are disconnected, data stays. */
  stop(): Promise<void>;
  /** Start again on the same port and data. */
  start(): Promise<void>;
  /** Stop and delete the data directory. */
  destroy(): Promise<void>;
}

/** Start a MariaDB server of our own on a free loopback port, data in a temporary directory. */
export async function startThrowawayMariadb(): Promise<ThrowawayMariadb> {
  if (!existsSync(MARIADBD) || INSTALL_DB === undefined) throw new Error(`no ${MARIADBD} (or mariadb-install-db) to start a throwaway server with`);
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-mariadb-'));
  const dataDir = join(dir, 'data');
  const user = process.getuid?.() === 0 ? 'root' : (process.env.USER ?? 'root');
  await promisify(execFile)(INSTALL_DB, [
    '--no-defaults',
    `--datadir=${dataDir}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    `--user=${user}`,
  ]);
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    // No binary log, lazy log flush, a small buffer pool: the tests kill workers, not the server,
    // and stop it only cleanly.
    child = spawn(
      MARIADBD,
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${join(dir, 'sock')}`,
        `--pid-file=${join(dir, 'pid')}`,
        `--user=${user}`,
        '--skip-name-resolve',
        '--skip-log-bin',
        '--innodb-buffer-pool-size=64M',
        '--innodb-flush-log-at-trx-commit=2',
        '--max-connections=300',
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 30_000;
    while (!(await portAnswers('127.0.0.1', port, 200))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mariadbd did not start on port ${port} (exit ${child.exitCode})`);
      await sleep(100);
    }
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  // A test runner killed mid-way must not leave a server behind.
  process.once('exit', () => child?.kill('SIGKILL'));
  await start();
  const url = `mysql://root@127.0.0.1:${port}/test`;
  await withMysqlPool(`mysql://root@127.0.0.1:${port}/mysql`, (pool) => pool.query('CREATE DATABASE IF NOT EXISTS test'));
  return {
    url,
    port,
    stop,
    start,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Find the server for this test run (see the top of this file); starts one if it must. */
export async function findMysql(): Promise<{ availability: MysqlAvailability; server?: ThrowawayMariadb }> {
  if (process.env.MYSQL_URL !== undefined) return { availability: { url: process.env.MYSQL_URL, source: '$MYSQL_URL' } };
  const [host = '127.0.0.1', port = '3306'] = (process.env.CKPT_TEST_MYSQL_PROBE ?? '127.0.0.1:3306').split(':');
  if (await portAnswers(host, Number(port))) return { availability: { url: `mysql://root@${host}:${port}/test`, source: `${host}:${port}` } };
  if (!existsSync(MARIADBD)) return { availability: { skip: `no MySQL for the tests: $MYSQL_URL unset, nothing on ${host}:${port}, no ${MARIADBD}` } };
  const server = await startThrowawayMariadb();
  return { availability: { url: server.url, source: `a throwaway mariadbd on port ${server.port}` }, server };
}

let resolved: Promise<MysqlAvailability> | undefined;

/**
 * The server every test file shares: found once by the global setup (CKPT_TEST_MYSQL_URL or
 * CKPT_TEST_MYSQL_SKIP), else by this process, for a test file run on its own.
 */
export function sharedMysql(): Promise<MysqlAvailability> {
  resolved ??= (async () => {
    if (process.env.CKPT_TEST_MYSQL_URL !== undefined) return { url: process.env.CKPT_TEST_MYSQL_URL, source: 'the global setup' };
    if (process.env.CKPT_TEST_MYSQL_SKIP !== undefined) return { skip: process.env.CKPT_TEST_MYSQL_SKIP };
    const { availability, server } = await findMysql();
    if (server) process.once('beforeExit', () => void server.destroy());
    return availability;
  })();
  return resolved;
}

/** Why MySQL tests are skipped here, or false when a server is there: for `test(…, { skip })`. */
export async function mysqlSkip(): Promise<string | false> {
  const availability = await sharedMysql();
  return 'skip' in availability ? availability.skip : false;
}

export async function withMysqlPool<T>(url: string, work: (pool: MysqlPool) => Promise<T>): Promise<T> {
  const pool = await createMysqlPool({ url, max: 2 });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/** Rows of one statement. */
export async function mysqlRows(url: string, sql: string, values?: unknown[]): Promise<Record<string, unknown>[]> {
  return withMysqlPool(url, async (pool) => toResult(await pool.query(sql, values)).rows);
}

/** A fresh database on the shared server, so test files and tests never see each other's tables. */
export async function freshMysqlDatabase(prefix = 'ckpt_t'): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const availability = await sharedMysql();
  if ('skip' in availability) throw new Error(availability.skip);
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await withMysqlPool(availability.url, (pool) => pool.query(`CREATE DATABASE ${name}`));
  const url = new URL(availability.url);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => withMysqlPool(availability.url, (pool) => pool.query(`DROP DATABASE IF EXISTS ${name}`)).then(() => undefined),
  };
}
