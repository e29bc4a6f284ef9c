// One PostgreSQL server for the whole `node --test` run, shared by every test file (each makes
// its own database on it). Skipped when DATABASE_URL names a server already.
import { type EmbeddedServer, startEmbeddedPostgres } from './helpers/postgres.ts';

let server: EmbeddedServer | undefined;

export async function globalSetup(): Promise<void> {
  if (process.env.DATABASE_URL !== undefined) {
    process.env.CKPT_TEST_DATABASE_URL = process.env.DATABASE_URL;
    return;
  }
  server = await startEmbeddedPostgres();
  process.env.CKPT_TEST_DATABASE_URL = server.url;
}

export async function globalTeardown(): Promise<void> {
  await server?.destroy();
}
