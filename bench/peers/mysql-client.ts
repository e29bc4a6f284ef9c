// A bare mysql2 connection for the variants that write to MySQL/MariaDB without checkpointed, and
// the fresh databases every bench variant gets (the server at $MYSQL_URL, else 127.0.0.1:3306).
import { createRequire } from 'node:module';

type Mysql = typeof import('mysql2/promise');
const load = (): Mysql => createRequire(import.meta.url)('mysql2/promise') as Mysql;

export const mysqlServerUrl = (): string => process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

/** Creates database `name` on the server and returns its URL (a connection refused throws: no MySQL rows). */
export async function freshMysqlDatabase(name: string): Promise<string> {
  const connection = await load().createConnection({ uri: mysqlServerUrl(), connectTimeout: 3000 });
  try {
    await connection.query(`DROP DATABASE IF EXISTS ${name}`);
    await connection.query(`CREATE DATABASE ${name}`);
  } finally {
    await connection.end();
  }
  const url = new URL(mysqlServerUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropMysqlDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const connection = await load().createConnection({ uri: mysqlServerUrl() });
  try {
    await connection.query(`DROP DATABASE IF EXISTS ${name}`);
  } finally {
    await connection.end();
  }
}

export async function connectMysql(url: string) {
  // The text protocol with client-side parameters, as the MySQL store's ctx.tx sends them.
  const connection = await load().createConnection({ uri: url });
  return {
    exec: async (sql: string) => {
      await connection.query(sql);
    },
    run: async (sql: string, params: unknown[]) => {
      await connection.query(sql, params);
    },
    close: () => connection.end(),
  };
}
