import { firstLine, UsageError } from '../../errors.ts';
import { hasLoneSurrogate } from '../../lone-surrogate.ts';
import type { AnyJob } from '../define.ts';

/** The longest shard name every store holds (MySQL's VARCHAR(512)), in characters. */
const MAX_SHARD_NAME = 512;

/** The job's shard names (`['main']` when it declares none), checked as every store can hold them. */
export async function listShardNames(job: AnyJob, params: unknown): Promise<string[]> {
  if (!job.shards) return ['main'];
  let names: unknown;
  try {
    names = await job.shards({ params });
  } catch (error) {
    throw new UsageError(`job ${job.name}: shards() failed: ${firstLine(error)}`, { job: job.name, cause: error });
  }
  if (!Array.isArray(names) || names.length === 0 || names.some((name) => typeof name !== 'string' || name === '')) {
    throw new UsageError(`job ${job.name}: shards() must return a non-empty list of non-empty strings`, { job: job.name });
  }
  if (new Set(names).size !== names.length) throw new UsageError(`job ${job.name}: shards() returned the same shard twice`, { job: job.name });
  // What every store can hold (MySQL's column is VARCHAR(512); no SQL text holds a NUL), so a job
  // that runs on one store runs on all: refused here in one line, not by the database mid-claim.
  // A lone surrogate: '\ud800' and '\udfff' were stored as one shard (lone-surrogate.ts) and the
  // other's records never read.
  for (const name of names as string[]) {
    const length = [...name].length;
    const why = name.includes('\0')
      ? 'holds a NUL character'
      : hasLoneSurrogate(name)
        ? 'holds a lone surrogate (half of a UTF-16 pair), which no store can keep'
        : length > MAX_SHARD_NAME
          ? `is ${length} characters long`
          : undefined;
    if (why !== undefined) {
      const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name);
      throw new UsageError(
        `job ${job.name}: the shard name ${shown} ${why}; a shard name has at most ${MAX_SHARD_NAME} characters, no NUL and no lone surrogate`,
        {
          job: job.name,
        },
      );
    }
  }
  return names as string[];
}
