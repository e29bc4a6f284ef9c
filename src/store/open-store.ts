import { UsageError } from '../errors.ts';
import { redactText } from '../redact.ts';
import type { Store } from './store.ts';

export const DEFAULT_STORE_URL = 'sqlite:.ckpt/ckpt.db';

/** What a store URL names: `sqlite:PATH`, `sqlite://PATH`, `postgres://…`, `mysql://…`; `memory:` is SQLite's `:memory:`. */
export type StoreTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string } | { kind: 'mysql'; url: string };

/** A "path" that is itself a store URL (`sqlite:sqlite:/x.db`) would become a folder named `sqlite:`. */
const URL_AS_PATH = /^(sqlite|postgres|postgresql|mysql|mariadb|memory|file):/i;

export function parseStoreUrl(url: string): StoreTarget {
  const text = url.trim();
  const hint = 'use sqlite:PATH (e.g. sqlite:.ckpt/ckpt.db), postgres://user@host/db, mysql://user@host/db or memory:';
  if (text === '') throw new UsageError(`the store URL is empty; ${hint}`);
  // Nothing survives the process: for trying a job out, and for tests.
  if (text === 'memory:' || text === 'memory://') return { kind: 'sqlite', path: ':memory:' };
  const sqlite = /^sqlite:(?:\/\/)?(.*)$/.exec(text);
  if (sqlite) {
    const path = sqlite[1] ?? '';
    if (path === '' || path.includes('\0')) throw new UsageError(`the store URL ${JSON.stringify(url)} names no file; ${hint}`);
    if (URL_AS_PATH.test(path)) {
      throw new UsageError(
        `the store URL ${JSON.stringify(redactUrl(text))} names a file that is itself a URL; did you mean ${JSON.stringify(redactUrl(path))}?`,
      );
    }
    // No shell expands a ~ after `sqlite:`: the store would be made in a folder named `~` under
    // the working directory, and the same command run from elsewhere would find no store there.
    if (path === '~' || path.startsWith('~/')) {
      throw new UsageError(
        `the store path ${JSON.stringify(path)} starts with ~, which is not expanded after sqlite: (it would be a folder named ~ here); write the full path, e.g. --store sqlite:$HOME${path.slice(1)}`,
      );
    }
    return { kind: 'sqlite', path };
  }
  if (/^(postgres(ql)?|mysql):\/\//.test(text)) refuseRawPassword(text);
  if (/^postgres(ql)?:\/\//.test(text)) {
    try {
      const parsed = new URL(text);
      if (parsed.hostname === '' && !parsed.searchParams.has('host')) throw new Error('no host');
    } catch {
      throw new UsageError(`the store URL ${redactUrl(url)} is not a valid PostgreSQL URL; ${hint}`);
    }
    return { kind: 'postgres', url: text };
  }
  if (/^mysql:\/\//.test(text)) {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      throw new UsageError(`the store URL ${redactUrl(url)} is not a valid MySQL URL; ${hint}`);
    }
    // The store's tables live in the URL's database: without one there is nowhere to put them.
    if (parsed.hostname === '' || parsed.pathname.replace(/^\//, '') === '') {
      throw new UsageError(`the store URL ${redactUrl(url)} names no ${parsed.hostname === '' ? 'host' : 'database'}; use mysql://user:password@host:3306/db`);
    }
    return { kind: 'mysql', url: text };
  }
  throw new UsageError(`the store URL ${JSON.stringify(redactUrl(url))} is not understood; ${hint}`);
}

/** The URL with any password (and secret-named query parameter) replaced by `***`, for messages. */
export function redactUrl(url: string): string {
  return redactText(url, '***');
}

/**
 * A password holding a raw `@` or `/` makes a URL ambiguous: the driver would take part of it for
 * the host (and say so in its error, password and all). Asked to percent-encode instead.
 */
function refuseRawPassword(text: string): void {
  const authority = text.replace(/^[a-z]+:\/\//i, '').split(/[?#]/, 1)[0] ?? '';
  const userinfo = authority.slice(0, Math.max(0, authority.lastIndexOf('@')));
  const password = userinfo.includes(':') ? userinfo.slice(userinfo.indexOf(':') + 1) : '';
  if (/[@/]/.test(password)) {
    throw new UsageError(`the store URL ${redactUrl(text)} has a password with a raw @ or /; percent-encode them (%40, %2F)`);
  }
}

/** Open (and migrate) the store a URL names. */
export async function openStore(url: string = DEFAULT_STORE_URL): Promise<Store> {
  const target = parseStoreUrl(url);
  // A backend's module (and so its driver) is imported only for a URL that names it: importing
  // 'checkpointed' loads no database driver, and a SQLite user never needs `pg` or `mysql2` installed.
  let store: Store;
  if (target.kind === 'sqlite') {
    const { SqliteStore } = await import('./sqlite/index.ts');
    store = new SqliteStore(target.path);
  } else if (target.kind === 'mysql') {
    store = await openMysql(target.url);
  } else {
    store = await openPostgres(target.url);
  }
  try {
    await store.migrate();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
  return store;
}

/** `?schema=NAME` picks the schema of the store's tables; the rest of the URL goes to `pg`. */
async function openPostgres(url: string): Promise<Store> {
  const { PostgresStore } = await import('./postgres/index.ts');
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  return new PostgresStore({ connectionString: parsed.toString(), schema, location: redactUrl(url) });
}

/** `?prefix=NAME` names the store's tables in the URL's database; the rest of the URL goes to `mysql2`. */
async function openMysql(url: string): Promise<Store> {
  const { MysqlStore, parseMysqlUrl } = await import('./mysql/index.ts');
  const { driverUrl, prefix, database } = parseMysqlUrl(url);
  return new MysqlStore({ url: driverUrl, prefix, database, location: redactUrl(url) });
}
