import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CheckpointedError, ExitCode } from './errors.ts';
import type { JsonValue } from './json.ts';
import { makeDirectory } from './make-directory.ts';

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
      try {
        const decipher = createDecipheriv('aes-256-gcm', typeof key === 'function' ? key() : key, data.subarray(0, 12));
        decipher.setAuthTag(data.subarray(12, 28));
        const text = Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString('utf8');
        return new Secret(JSON.parse(text) as unknown);
      } catch {
        throw new CheckpointedError(
          'a secret recorded by an earlier run cannot be decrypted with this secret key; run with the same CKPT_SECRET_KEY (or key file) as that run',
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

/** The secret key, loaded (and its file created) on first use only. */
export function lazySecretKey(env: NodeJS.ProcessEnv, file: string | undefined): () => Buffer {
  let key: Buffer | undefined;
  return () => {
    key ??= loadSecretKey(env, file);
    return key;
  };
}

/**
 * The key that seals secrets in the effect journal: CKPT_SECRET_KEY when set, else a random key
 * kept in `file` (created 0600 beside a SQLite store), else one that lives as long as this process.
 */
export function loadSecretKey(env: NodeJS.ProcessEnv, file: string | undefined): Buffer {
  const fromEnv = env.CKPT_SECRET_KEY;
  if (fromEnv !== undefined && fromEnv !== '') return createHash('sha256').update(fromEnv).digest();
  if (file === undefined) return processKey;
  if (!existsSync(file)) {
    makeDirectory(dirname(file));
    try {
      writeFileSync(file, randomBytes(32).toString('hex'), { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    chmodSync(file, 0o600);
  }
  return createHash('sha256').update(readFileSync(file, 'utf8').trim()).digest();
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
    const fromEnv = env.CKPT_SECRET_KEY;
    const haveKey = (fromEnv !== undefined && fromEnv !== '') || (file !== undefined && existsSync(file));
    if (!haveKey) return undefined;
    key = createHmac('sha256', loadSecretKey(env, file)).update('checkpointed audit chain v1').digest();
    return key;
  };
}
