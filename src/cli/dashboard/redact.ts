import type { JsonValue } from '../../json.ts';
import { redactText, SECRET_NAME } from '../../redact.ts';
import { REDACTED } from '../../secret.ts';

export { redactText };

/**
 * A copy of `value` with every secret-named field, and every credential in a URL, shown as
 * `[redacted]`. Values wrapped in `secret()` and `redact: [...]` params are stored redacted
 * already; this catches the ones a job stored in clear by mistake.
 */
export function redactJson(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(redactJson);
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  const copy: { [key: string]: JsonValue } = {};
  for (const [key, inner] of Object.entries(value)) copy[key] = SECRET_NAME.test(key) ? REDACTED : redactJson(inner);
  return copy;
}
