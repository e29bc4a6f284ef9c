import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { reapDeadWorkers } from '../job/workers.ts';
import { redactJson, redactText } from '../redact.ts';
import { REDACTED, secretKeyFromEnv } from '../secret.ts';
import { DEFAULT_STORE_URL, openStore, parseStoreUrl } from '../store/open-store.ts';
import type { InstanceInfo, Store } from '../store/store.ts';

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
  /** Where an export's bytes go (`ckpt audit --export` without `--out`): stdout as it is, unless a terminal. */
  dataOut?: NodeJS.WriteStream;
}

let currentIo: CliIo | undefined;
export function setIo(io: CliIo): void {
  currentIo = io;
}

/** The store URL: --store, else CKPT_STORE, else a postgres:// or mysql:// DATABASE_URL, else the embedded default. */
export function storeUrl(flag: string | undefined): string {
  const env = currentIo?.env ?? {};
  const database = env.DATABASE_URL !== undefined && /^(postgres(ql)?|mysql):\/\//.test(env.DATABASE_URL) ? env.DATABASE_URL : undefined;
  return flag ?? env.CKPT_STORE ?? database ?? DEFAULT_STORE_URL;
}

/**
 * Open the store the command line names. `existing`: the command only reads or manages what is
 * there (status, runs, events, reset, dlq), so a SQLite path with no file is a mistyped path to
 * report, not a store to create.
 */
export async function openCliStore(flag: string | undefined, options: { existing?: boolean } = {}): Promise<Store> {
  const url = storeUrl(flag);
  // A malformed CKPT_SECRET_KEY is said before anything is opened, whatever the command: the
  // audit chain and sealed results are keyed with it.
  secretKeyFromEnv(currentIo?.env ?? {});
  try {
    const target = parseStoreUrl(url);
    if (options.existing && target.kind === 'sqlite' && target.path !== ':memory:' && !existsSync(target.path)) {
      const from = flag !== undefined ? '--store' : currentIo?.env.CKPT_STORE !== undefined ? '$CKPT_STORE' : 'the default store';
      throw new UsageError(`no store at ${target.path} (${from}): nothing has run with it yet; check the path, or start a job with ckpt run <job-file>`);
    }
  } catch (error) {
    // A URL the user did not type on this command line: say where it came from.
    if (flag === undefined && currentIo?.env.CKPT_STORE !== undefined && error instanceof UsageError) {
      throw new UsageError(`$CKPT_STORE: ${error.message}; or unset it to use ${DEFAULT_STORE_URL}`, { cause: error });
    }
    throw error;
  }
  return openStore(url);
}

/**
 * The instances of a job whose params include every `--param` given. Identifying an instance by
 * name needs no job file; a job whose params have defaults is matched on what was stored.
 */
export async function findInstances(store: Store, job: string, params: { [key: string]: string }, options: { reap?: boolean } = {}): Promise<InstanceInfo[]> {
  const instances = await store.listInstances(job);
  if (instances.length === 0) throw new UsageError(`no job named ${job} has run on this store (${store.location}); see ckpt status`);
  // A param is stored with a URL's password redacted, a secret-named or `redact` one as
  // [redacted]: the value typed in full matches it too.
  const matching = instances.filter((instance) =>
    Object.entries(params).every(([key, value]) => [value, redactText(value), REDACTED].includes(String(instance.params[key]))),
  );
  if (matching.length === 0) throw new UsageError(`no instance of ${job} has params ${JSON.stringify(redactJson(params))}; see ckpt status`);
  if (options.reap !== false) for (const instance of matching) await reapDeadWorkers(store, instance.id);
  return matching;
}

/** The key file that seals secrets in a SQLite store's effect journal: beside the store, mode 0600. */
export function secretKeyFileFor(flag: string | undefined): string | undefined {
  const target = parseStoreUrl(storeUrl(flag));
  return target.kind === 'sqlite' && target.path !== ':memory:' ? `${resolve(target.path)}.key` : undefined;
}
