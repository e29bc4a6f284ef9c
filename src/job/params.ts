// A job's params: parsed by the job, shown with secrets redacted, hashed into the instance's identity.
import { firstLine, UsageError } from '../errors.ts';
import { hashJson, type JsonObject, type JsonValue, sha256 } from '../json.ts';
import { redactJson } from '../redact.ts';
import { isSecret, REDACTED } from '../secret.ts';
import type { AnyJob } from './define.ts';

/** Parse raw params with the job's parser; what identifies the instance and what is shown. */
export function resolveParams(job: AnyJob, raw: { [key: string]: string }): { params: unknown; displayParams: JsonObject; paramsHash: string } {
  let params: unknown;
  try {
    params = job.params ? job.params({ ...raw }) : { ...raw };
  } catch (error) {
    throw new UsageError(`job ${job.name} rejected its params: ${firstLine(error)}`, { job: job.name, cause: error });
  }
  try {
    const { display, identity } = splitParams(params, job.redact ?? []);
    return { params, displayParams: display, paramsHash: hashJson(identity ?? {}) };
  } catch (error) {
    // A BigInt, a cycle…: the params could be neither stored nor hashed into the instance's identity.
    throw new UsageError(`job ${job.name}: params() must return plain JSON (strings, numbers, booleans, objects, arrays): ${firstLine(error)}`, {
      job: job.name,
      cause: error,
    });
  }
}

/**
 * The params as shown (redacted names and Secrets as "[redacted]") and as identified (redacted
 * names by the hash of their value, so a changed secret is another instance, yet never stored).
 */
function splitParams(params: unknown, redact: string[]): { display: JsonObject; identity: unknown } {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) return { display: toJsonObject(params), identity: params };
  const display: { [key: string]: unknown } = { ...params };
  const identity: { [key: string]: unknown } = { ...params };
  for (const name of redact) {
    if (!(name in display)) continue;
    const value = display[name];
    identity[name] = `sha256:${sha256(JSON.stringify(isSecret(value) ? value.reveal() : value) ?? '')}`;
    display[name] = REDACTED;
  }
  return { display: toJsonObject(display), identity };
}

/**
 * As stored and shown: a secret-named param (`apiToken`, `password`, …), a URL's password or
 * `?api_key=` in a string param is hidden too (the hash keeps the instances apart).
 */
function toJsonObject(value: unknown): JsonObject {
  const json = redactJson(JSON.parse(JSON.stringify(value ?? {})) as JsonValue);
  return json !== null && typeof json === 'object' && !Array.isArray(json) ? json : { value: json };
}
