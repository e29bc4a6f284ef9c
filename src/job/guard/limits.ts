import { UsageError } from '../../errors.ts';
import { SECRET_NAME } from '../../redact.ts';
import { shellWord } from '../../shell-word.ts';
import type { AnyJob } from '../define.ts';
import type { EffectGuards } from '../effects/effects.ts';

/**
 * The job's `limits` and `approvals` as a shard run's effects use them: each limit as a count
 * (`maxPercent` of `total`, the instance's records: see instanceTotal), and the command that
 * releases a hold (secret params left for the operator to fill in).
 */
export function effectGuards(job: AnyJob, params: unknown, total: number | undefined): EffectGuards {
  const limits = new Map<string, number>();
  for (const [kind, spec] of Object.entries(job.limits ?? {})) {
    if (spec.max !== undefined) {
      limits.set(kind, spec.max);
      continue;
    }
    if (total === undefined) {
      throw new UsageError(`job ${job.name}: limits.${kind}.maxPercent needs a source that knows its size (size()); give max instead`, { job: job.name });
    }
    limits.set(kind, Math.floor((total * spec.maxPercent) / 100));
  }
  return { limits, approvals: job.approvals ?? 1, approveCommand: approveCommand(job, params) };
}

/** `ckpt approve <job> --param k=v …`, a value with spaces or quotes quoted for a POSIX shell. */
function approveCommand(job: AnyJob, params: unknown): string {
  const secret = new Set(job.redact ?? []);
  const flags: string[] = [];
  if (params !== null && typeof params === 'object') {
    for (const [key, value] of Object.entries(params)) {
      if (!['string', 'number', 'boolean'].includes(typeof value)) continue;
      // A secret is left for the operator to type: a `redact` param, or one whose name says so.
      const text = secret.has(key) || SECRET_NAME.test(key) ? '…' : String(value);
      flags.push(`--param ${shellWord(`${key}=${text}`)}`);
    }
  }
  return ['ckpt approve', shellWord(job.name), ...flags].join(' ');
}

/** Whether a limit of the job is a share of the instance's records (`maxPercent`): then its shard runs need instanceTotal. */
export function limitsShareOfInstance(job: AnyJob): boolean {
  return Object.values(job.limits ?? {}).some((spec) => spec.maxPercent !== undefined);
}

/**
 * The instance's records, which a `maxPercent` limit is a share of (the count it limits is the
 * instance's, across shards): the sum of every shard source's `size()`; undefined when a source
 * does not know its size. The runner asks it once per process, for all its shard runs.
 */
export async function instanceTotal(job: AnyJob, params: unknown, shards: readonly string[]): Promise<number | undefined> {
  let sum = 0;
  for (const shard of shards) {
    const size = await Promise.resolve((await job.source({ params, shard })).size?.()).catch(() => undefined);
    if (size === undefined) return undefined;
    sum += size;
  }
  return sum;
}
