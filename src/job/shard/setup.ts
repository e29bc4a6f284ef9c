import type { JsonObject } from '../../json.ts';
import type { Tx } from '../../store/store.ts';
import { describeJobError } from '../code-location.ts';
import { type AnyJob, jobFileOf, type SetupInput } from '../define.ts';
import { type JobSql, jobSql } from '../tx/job-sql.ts';

/** A setup() that threw: the shard run fails before its first record, nothing committed. */
export class SetupFailed extends Error {}

/**
 * Run the job's `setup` (if any) in `tx`, the transaction the shard's next checkpoint commits,
 * before the shard's first record — at every start and resume of a shard run, so what it
 * creates exists before any record needs it and is committed with the first checkpoint.
 */
export async function runSetup(job: AnyJob, input: { params: unknown; shard: string; state: JsonObject; tx: Tx }): Promise<void> {
  if (job.setup === undefined) return;
  let handle: JobSql | undefined;
  const setupInput: SetupInput<unknown, JsonObject> = {
    params: input.params,
    shard: input.shard,
    state: input.state,
    get tx(): JobSql {
      const sql = input.tx.sql;
      if (sql === undefined) throw new Error('setup: tx needs a SQL store (sqlite:, postgres:// or mysql://); this store has no SQL');
      handle ??= jobSql(sql);
      return handle;
    },
  };
  try {
    await job.setup(setupInput);
  } catch (error) {
    throw new SetupFailed(`setup() failed: ${describeJobError(error, jobFileOf(job))}`, { cause: error });
  }
}
