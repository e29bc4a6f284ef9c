// MySQL/MariaDB for the tests: CKPT_TEST_MYSQL_URL, else a local server at 127.0.0.1:3306 (root,
// no password) when one answers. Each test gets its own database, dropped afterwards.
import { createConnection } from 'node:net';

export const mysqlServerUrl = process.env.CKPT_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';

interface MysqlModule {
  createConnection(config: { uri: string; multipleStatements?: boolean }): Promise<{
    query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
    end(): Promise<void>;
  }>;
}

/** Why the MySQL tests cannot run here, or undefined when they can. */
export async function mysqlUnavailable(): Promise<string | undefined> {
  try {
    await import('mysql2/promise');
  } catch {
    return 'the mysql2 driver is not installed';
  }
  const url = new URL(mysqlServerUrl);
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: url.hostname, port: Number(url.port || 3306) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  return reachable ? undefined : `no MySQL/MariaDB answers at ${url.host} (set CKPT_TEST_MYSQL_URL)`;
}

export async function mysqlModule(): Promise<MysqlModule> {
  const module = (await import('mysql2/promise')) as unknown as MysqlModule & { default?: MysqlModule };
  return module.default ?? module;
}

/** A fresh database on the server; `url` names it. */
export async function freshMysqlDatabase(prefix = 'ckpt_t'): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const mysql = await mysqlModule();
  const admin = await mysql.createConnection({ uri: mysqlServerUrl });
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(mysqlServerUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const connection = await mysql.createConnection({ uri: mysqlServerUrl });
      await connection.query(`DROP DATABASE IF EXISTS ${name}`);
      await connection.end();
    },
  };
}

/** Run statements against a database URL on one connection. */
export async function mysqlExec(url: string, statements: (string | [string, unknown[]])[]): Promise<void> {
  const mysql = await mysqlModule();
  const connection = await mysql.createConnection({ uri: url });
  try {
    for (const statement of statements) {
      if (typeof statement === 'string') await connection.query(statement);
      else await connection.query(statement[0], statement[1]);
    }
  } finally {
    await connection.end();
  }
}
