import { join } from 'node:path';
import { firstLine, StoreError } from '../errors.ts';
import { parseStoreUrl, redactUrl } from '../store/open-store.ts';
import { dialects } from '../store/sql/dialects.ts';

/** A store made for one chaos round (or the clean run), and how to take it away again. */
export interface ScratchStore {
  url: string;
  /** The URL as printed: no password, no driver options. */
  shown: string;
  /** Drops what was created for it; a SQLite file goes with its directory. */
  drop(): Promise<void>;
}

/**
 * A fresh store like `base` (the store the job really uses), named `name`: on PostgreSQL a schema
 * of that name in the URL's database, which the job's own `ctx.tx` SQL also gets as its
 * search_path, so its unqualified tables are made there and dropped with it; on MySQL a
 * database of that name on the URL's server; else (no `--store`, or a `sqlite:` one) a SQLite
 * file in `home`, as the user's real store is never to be touched.
 */
export async function scratchStore(base: string | undefined, home: string, name: string): Promise<ScratchStore> {
  const target = base === undefined ? undefined : parseStoreUrl(base);
  if (target === undefined || target.kind === 'sqlite') {
    const url = `sqlite:${join(home, 'store.db')}`;
    return { url, shown: url, drop: async () => undefined };
  }
  return target.kind === 'postgres' ? await postgresScratch(target.url, name) : await mysqlScratch(target.url, name);
}

async function postgresScratch(base: string, name: string): Promise<ScratchStore> {
  const { createPgPool } = await import('../store/postgres/index.ts');
  const quoteName = (identifier: string) => dialects.postgres.quote(identifier);
  const server = new URL(base);
  server.searchParams.delete('schema');
  const onServer = async (sql: string, doing: string) => {
    const pool = await createPgPool({ connectionString: server.toString(), max: 1 });
    try {
      await pool.query(sql);
    } catch (error) {
      throw new StoreError(`ckpt chaos cannot ${doing} the scratch schema ${name} on ${redactUrl(base)}: ${firstLine(error)}`, { cause: error });
    } finally {
      await pool.end();
    }
  };
  await onServer(`CREATE SCHEMA ${quoteName(name)}`, 'create');
  const url = new URL(server);
  url.searchParams.set('schema', name);
  const shown = redactUrl(url.toString());
  // Passed by the driver as the session's startup options: every connection of the run, the job's too.
  const options = url.searchParams.get('options');
  url.searchParams.set('options', `${options === null ? '' : `${options} `}-c search_path=${name}`);
  return { url: url.toString(), shown, drop: () => onServer(`DROP SCHEMA IF EXISTS ${quoteName(name)} CASCADE`, 'drop') };
}

async function mysqlScratch(base: string, name: string): Promise<ScratchStore> {
  const { createMysqlPool, parseMysqlUrl } = await import('../store/mysql/index.ts');
  const { driverUrl } = parseMysqlUrl(base);
  const onServer = async (sql: string, doing: string) => {
    const pool = await createMysqlPool({ url: driverUrl, max: 1 });
    try {
      await pool.query(sql);
    } catch (error) {
      throw new StoreError(`ckpt chaos cannot ${doing} the scratch database ${name} on ${redactUrl(base)}: ${firstLine(error)}`, { cause: error });
    } finally {
      await pool.end();
    }
  };
  await onServer(`CREATE DATABASE \`${name}\``, 'create');
  const url = new URL(base);
  url.pathname = `/${name}`;
  return { url: url.toString(), shown: redactUrl(url.toString()), drop: () => onServer(`DROP DATABASE IF EXISTS \`${name}\``, 'drop') };
}
