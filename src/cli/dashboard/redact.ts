import type { JsonValue } from '../../json.ts';
import { REDACTED } from '../../secret.ts';

/**
 * Names whose values are secrets wherever they appear in what the page shows (params, records,
 * event data). Values wrapped in `secret()` and `redact: [...]` params are stored redacted
 * already; this catches the ones a job stored in clear by mistake.
 */
const SECRET_NAME = /pass(word|wd|phrase)?$|secret|token|api[-_]?key|authorization|credential|private[-_]?key|cookie|session/i;

/** A copy of `value` with every secret-named field, and every credential in a URL, shown as `[redacted]`. */
export function redactJson(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(redactJson);
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  const copy: { [key: string]: JsonValue } = {};
  for (const [key, inner] of Object.entries(value)) copy[key] = SECRET_NAME.test(key) ? REDACTED : redactJson(inner);
  return copy;
}

/** A credential in a URL (`postgres://user:pw@host`, `?password=`) as `[redacted]`. */
export function redactText(text: string): string {
  return text.replace(/(\/\/[^:/@\s]+:)[^@/\s]*@/g, `$1${REDACTED}@`).replace(/([?&](?:password|token|secret)=)[^&\s]*/gi, `$1${REDACTED}`);
}
