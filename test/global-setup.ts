// One PostgreSQL server and one MySQL/MariaDB server for the whole `node --test` run, shared by
// every test file (each makes its own databases on them). PostgreSQL: DATABASE_URL, else an
// embedded server. MySQL: see test/helpers/mysql.ts (the reason is passed on when there is none).
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMysql, type ThrowawayMariadb } from './helpers/mysql.ts';
import { type EmbeddedServer, startEmbeddedPostgres } from './helpers/postgres.ts';

let server: EmbeddedServer | undefined;
let mariadb: ThrowawayMariadb | undefined;

export async function globalSetup(): Promise<void> {
  // Every test file's process compiles the same TypeScript (its helpers, src/): Node's compile
  // cache keeps it between them, in the place bin/ckpt.js uses for its children (Node's default).
  process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), 'node-compile-cache');
  const { availability, server: started } = await findMysql();
  mariadb = started;
  if ('skip' in availability) process.env.CKPT_TEST_MYSQL_SKIP = availability.skip;
  else process.env.CKPT_TEST_MYSQL_URL = availability.url;
  if (process.env.DATABASE_URL !== undefined) {
    process.env.CKPT_TEST_DATABASE_URL = process.env.DATABASE_URL;
    return;
  }
  server = await startEmbeddedPostgres();
  process.env.CKPT_TEST_DATABASE_URL = server.url;
}

export async function globalTeardown(): Promise<void> {
  await server?.destroy();
  await mariadb?.destroy();
}
