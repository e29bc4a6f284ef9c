import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { CheckpointedError, ExitCode, StoreIdentityError, UsageError } from './errors.ts';
import type { JsonValue } from './json.ts';
import { makeDirectory, syncDirectory } from './make-directory.ts';

export const REDACTED = '[redacted]';
const secretBrand = Symbol.for('checkpointed.secret');
const SEALED = '$ckptSealed';

/**
 * A value that must never be printed or stored in clear: it shows as `[redacted]` in strings,
 * JSON (events, logs, CLI output, dead letters) and `util.inspect`; `reveal()` gives the value.
 */
export class Secret<T = string> {
  readonly [secretBrand] = true;
  readonly #value: T;
  constructor(value: T) {
    this.#value = value;
  }
  reveal(): T {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }
}

/** Wrap a value so that it prints as `[redacted]` everywhere. */
export function secret<T>(value: T): Secret<T> {
  return new Secret(value);
}

export function isSecret(value: unknown): value is Secret<unknown> {
  return value !== null && typeof value === 'object' && (value as { [secretBrand]?: unknown })[secretBrand] === true;
}

/** A step's result made storable: every Secret in it is encrypted (AES-256-GCM), the rest is JSON. */
/** `key` may be a function: it is called only when a Secret is found (no key file for jobs without secrets). */
export function sealSecrets(value: unknown, key: Buffer | (() => Buffer)): JsonValue | null {
  if (value === undefined) return null;
  if (isSecret(value)) {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', typeof key === 'function' ? key() : key, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(value.reveal()), 'utf8'), cipher.final()]);
    return { [SEALED]: Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64') };
  }
  if (Array.isArray(value)) return value.map((item) => sealSecrets(item, key));
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON !== 'function') {
    const out: { [key: string]: JsonValue } = {};
    for (const [name, entry] of Object.entries(value)) if (entry !== undefined) out[name] = sealSecrets(entry, key);
    return out;
  }
  return JSON.parse(JSON.stringify(value) ?? 'null') as JsonValue;
}

/** The reverse of sealSecrets: sealed values come back as Secrets. */
export function unsealSecrets(value: JsonValue | null, key: Buffer | (() => Buffer)): unknown {
  if (Array.isArray(value)) return value.map((item) => unsealSecrets(item, key));
  if (value !== null && typeof value === 'object') {
    const sealed = value[SEALED];
    if (typeof sealed === 'string' && Object.keys(value).length === 1) {
      const data = Buffer.from(sealed, 'base64');
      const using = typeof key === 'function' ? key() : key;
      try {
        const decipher = createDecipheriv('aes-256-gcm', using, data.subarray(0, 12));
        decipher.setAuthTag(data.subarray(12, 28));
        const text = Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString('utf8');
        return new Secret(JSON.parse(text) as unknown);
      } catch {
        // No CKPT_SECRET_KEY on a store with no key file (PostgreSQL, MySQL): the run that sealed
        // it had a key of its own process too, gone with it.
        throw new CheckpointedError(
          using === processKey
            ? 'a secret recorded by an earlier run cannot be decrypted: this store keeps no secret key (PostgreSQL and MySQL have no key file), so without CKPT_SECRET_KEY each process seals with a key that dies with it; that secret is lost: set CKPT_SECRET_KEY for every run of the job from now on'
            : 'a secret recorded by an earlier run cannot be decrypted with this secret key; run with the same CKPT_SECRET_KEY (or key file) as that run',
          ExitCode.usage,
        );
      }
    }
    const out: { [key: string]: unknown } = {};
    for (const [name, entry] of Object.entries(value)) out[name] = unsealSecrets(entry, key);
    return out;
  }
  return value;
}

const processKey = randomBytes(32);

/** What a valid `CKPT_SECRET_KEY` is, said when one is not. */
const VALID_KEY = 'CKPT_SECRET_KEY must be at least 32 characters with no spaces or control characters (e.g. the output of `openssl rand -hex 32`)';

/**
 * `CKPT_SECRET_KEY`, checked: undefined when unset or empty; a key too short to resist guessing,
 * or one holding spaces or control characters (a copy-paste that took a newline or half a line),
 * is refused rather than used, since whatever it seals would later need that exact text back.
 */
export function secretKeyFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const text = env.CKPT_SECRET_KEY;
  if (text === undefined || text === '') return undefined;
  if (text.length < 32 || /[\s\p{Cc}]/u.test(text)) {
    throw new UsageError(
      `${VALID_KEY}; the one set has ${text.length} character${text.length === 1 ? '' : 's'}${/[\s\p{Cc}]/u.test(text) ? ' and holds a space or control character' : ''}`,
    );
  }
  return text;
}

/** A key's fingerprint: names the key in the store and in messages, and says nothing about it. */
export function secretKeyFingerprint(key: Buffer): string {
  return createHmac('sha256', key).update('checkpointed secret key fingerprint v1').digest('hex').slice(0, 16);
}

/**
 * What a store keeps about the key that seals its secrets: the key's fingerprint, recorded when
 * the key is made or first used, and whether it holds data only that key can read or check.
 * A SQLite store registers one for its `<store>.key` (registerSecretKeyRecord).
 */
export interface SecretKeyRecord {
  /** The fingerprint recorded for the store's key, if one was. */
  fingerprint(): string | undefined;
  /** Whether the store holds sealed step results or audit events keyed with a secret key. */
  holdsKeyedData(): boolean;
  /** Durably record the fingerprint of the key in use (apart from any open transaction). */
  record(fingerprint: string): void;
}

const keyRecords = new Map<string, SecretKeyRecord>();

/** The store that owns key file `file` says what it knows of its key; the returned function takes that back. */
export function registerSecretKeyRecord(file: string, record: SecretKeyRecord): () => void {
  keyRecords.set(file, record);
  return () => {
    if (keyRecords.get(file) === record) keyRecords.delete(file);
  };
}

/**
 * The secret key, checked now and loaded (its file created) on first use. Checked now, before
 * any record runs: a key that is missing or is not the store's is refused before a step could
 * seal a secret with the wrong one (the effect would have happened, its result unreadable).
 */
export function lazySecretKey(env: NodeJS.ProcessEnv, file: string | undefined): () => Buffer {
  if (secretKeyFromEnv(env) !== undefined || (file !== undefined && existsSync(file))) {
    const key = loadSecretKey(env, file);
    return () => key;
  }
  if (file !== undefined) refuseNewKey(file, keyRecords.get(file));
  let key: Buffer | undefined;
  return () => {
    key ??= loadSecretKey(env, file);
    return key;
  };
}

/**
 * The key that seals secrets in the effect journal: CKPT_SECRET_KEY when set, else a random key
 * kept in `file` (created 0600 beside a SQLite store), else one that lives as long as this process.
 * The store's record of its key is kept: a key file is made only for a store that never had a
 * key, and a key whose fingerprint is not the one recorded is refused (exit 4), never used.
 */
export function loadSecretKey(env: NodeJS.ProcessEnv, file: string | undefined): Buffer {
  const record = file === undefined ? undefined : keyRecords.get(file);
  const fromEnv = secretKeyFromEnv(env);
  if (fromEnv !== undefined) return checkedKey(keyOfText(fromEnv), 'CKPT_SECRET_KEY', file, record);
  if (file === undefined) return processKey;
  if (!existsSync(file)) {
    refuseNewKey(file, record);
    createKeyFile(file);
  }
  return checkedKey(readKeyFile(file), file, file, record);
}

/** `key` if it is the one the store recorded (recorded now if none was); else refused. */
function checkedKey(key: Buffer, source: string, file: string | undefined, record: SecretKeyRecord | undefined): Buffer {
  if (record === undefined) return key;
  const fingerprint = secretKeyFingerprint(key);
  const recorded = record.fingerprint();
  if (recorded === undefined) record.record(fingerprint);
  else if (recorded !== fingerprint) {
    throw new StoreIdentityError(
      `the secret key from ${source} (fingerprint ${fingerprint}) is not the key this store's secrets and audit log were sealed with (fingerprint ${recorded}); ` +
        `use that key: set CKPT_SECRET_KEY as before${file === undefined ? '' : `, or restore ${file} from a backup`}`,
    );
  }
  return key;
}

/**
 * A store that had a key never gets a new one in its place: what the old key sealed (step
 * results, the audit chain's HMACs) would be unreadable, and a step whose result cannot be read
 * fails or runs again. Refused while the key is missing, with how to get it back.
 */
function refuseNewKey(file: string, record: SecretKeyRecord | undefined): void {
  if (record === undefined) return;
  const recorded = record.fingerprint();
  if (recorded === undefined && !record.holdsKeyedData()) return;
  throw new StoreIdentityError(
    `the store's secret key file ${file} is missing, but the store holds secrets or audit events sealed with ${recorded === undefined ? 'a key' : `the key of fingerprint ${recorded}`}: ` +
      `restore ${file} from a backup (or set CKPT_SECRET_KEY to the key used before); a new key is never made in its place, as what the old one sealed would be lost`,
  );
}

/**
 * A new key file, whole or not at all: written 0600 beside it, flushed, then linked in place
 * (which fails if another process made it first: theirs is kept). A crash never leaves a short
 * key file that would be read as a key.
 */
function createKeyFile(file: string): void {
  makeDirectory(dirname(file));
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, randomBytes(32).toString('hex'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temporary, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  } finally {
    rmSync(temporary, { force: true });
  }
  syncDirectory(dirname(file));
  chmodSync(file, 0o600);
}

/** The key in a key file: 64 hex digits as created; anything else is a damaged file, never a key. */
function readKeyFile(file: string): Buffer {
  const text = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) {
    throw new StoreIdentityError(`the secret key file ${file} is damaged (it should hold 64 hex digits): restore it from a backup`);
  }
  return keyOfText(text);
}

/** The 32-byte key a key's text (CKPT_SECRET_KEY, or a key file's hex) stands for. */
function keyOfText(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * The key of the event log's hash chain, derived from the store's secret key (CKPT_SECRET_KEY,
 * else the `file` beside a SQLite store) when there is one, else undefined (plain SHA-256).
 * Never creates the key file: a store that has sealed no secret has none. Derived, not the
 * sealing key itself, so an HMAC published with the audit trail says nothing about that key.
 */
export function chainKeyFinder(env: NodeJS.ProcessEnv, file: string | undefined): () => Buffer | undefined {
  let key: Buffer | undefined;
  return () => {
    if (key !== undefined) return key;
    const fromEnv = secretKeyFromEnv(env);
    if (fromEnv === undefined && (file === undefined || !existsSync(file))) return undefined;
    // Read as it is, not checked against the store's record: readers (audit, the dashboard) write
    // nothing, and a run checks its key before its first event (lazySecretKey).
    const secretKey = fromEnv !== undefined ? keyOfText(fromEnv) : readKeyFile(file as string);
    key = createHmac('sha256', secretKey).update('checkpointed audit chain v1').digest();
    return key;
  };
}
