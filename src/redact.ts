// What a secret looks like in text we did not write: a URL's password, a query parameter named
// like a key. Messages, stored errors and the dashboard pass text through here before anyone
// sees it; values wrapped in `secret()` never get this far.
import { REDACTED } from './secret.ts';

/** Names whose values are secrets: param names, record fields, query parameters. */
export const SECRET_NAME = /pass(word|wd|phrase)?$|secret|token|api[-_]?key|authorization|credential|private[-_]?key|cookie|session/i;

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
