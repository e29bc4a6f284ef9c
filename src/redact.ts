// What a secret looks like in text we did not write: a URL's password, a query parameter named
// like a key. Messages, stored errors and the dashboard pass text through here before anyone
// sees it; values wrapped in `secret()` never get this far.
import type { JsonValue } from './json.ts';
import { REDACTED } from './secret.ts';

/**
 * Names whose values are secrets: param names, record fields, log data. Keys that are secrets by
 * their kind (`apiKey`, `signingKey`, `private_key`, `sshKey`, …); not a bare `key`, `keyId`,
 * `sortKey` or `idempotencyKey`, which name records and effects, not secrets.
 */
export const SECRET_NAME =
  /pass(word|wd|phrase)?$|pwd$|secret|token|(api|access|signing|encryption|ssh|master|hmac|license|auth|private)[-_]?key|authorization|credential|cookie|session/i;

/**
 * `scheme://user:password@`: the password runs to the last `@` of the word, so one holding a raw
 * `@` or `/` (`u:se@cr/et@host`) is hidden whole, never cut at its first `@`. It may hide a path
 * too (`//host:8080/a@b`): better a message missing its host than one showing a password.
 */
const URL_PASSWORD = /(\/\/[^:/@\s"'<>]*:)[^\s"'<>]*@/g;

/** `?api_key=…`, `&token=…`, `?sig=…`: query parameters whose names say they carry a secret. */
const SECRET_QUERY =
  /([?&;](?:key|sig|[\w.-]*(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|signature|auth|credential|session)[\w.-]*)=)[^&\s"'<>#]*/gi;

/** `text` with URL passwords and secret-named query parameters replaced by `marker`. */
export function redactText(text: string, marker: string = REDACTED): string {
  return text.replace(URL_PASSWORD, `$1${marker}@`).replace(SECRET_QUERY, `$1${marker}`);
}

/**
 * A copy of `value` with every secret-named field (SECRET_NAME, at any depth) shown as
 * `[redacted]`, and every credential in a string screened by redactText. The one function for
 * params wherever they are stored or shown (CLI, JSON output, audit export, dashboard), and for
 * records and positions the dashboard shows: `redact: [...]` params and `secret()` values are
 * redacted before this; it catches a secret a job left in clear under a name that says so.
 */
export function redactJson(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(redactJson);
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  const copy: { [key: string]: JsonValue } = {};
  for (const [key, inner] of Object.entries(value)) {
    // Defined, not assigned: a param named `__proto__` stays a param, not the copy's prototype.
    Object.defineProperty(copy, key, { value: SECRET_NAME.test(key) ? REDACTED : redactJson(inner), enumerable: true, writable: true, configurable: true });
  }
  return copy;
}
