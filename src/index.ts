/**
 * The public API, one page: what a job author and a program embedding runJob use. Every name
 * here is a promise, pinned by `test/public-api.test.ts`: adding one is a deliberate act.
 *
 * Beside it: `checkpointed/types` names the other types these functions take and return (a
 * source's options, a job's parts, a run's results, the events); `checkpointed/store` is the
 * store contract, for backend authors and for naming a `Store`; `checkpointed/sqlite`,
 * `checkpointed/postgres` and `checkpointed/mysql` are the backends' store classes. Importing
 * this loads no database driver: openStore imports a backend only for a URL that names it.
 *
 * @module checkpointed
 */
export {
  CheckpointedError,
  DriftError,
  ExitCode,
  FencedError,
  HeldError,
  JobFailedError,
  LeaseHeldError,
  SchemaTooNewError,
  StoreError,
  StoreIdentityError,
  StoreUnavailableError,
  UsageError,
} from './errors.ts';
export type { EventMap, RunEvent } from './events.ts';
export type { Job, JobContext, JobDefinition } from './job/define.ts';
export { defineJob } from './job/define.ts';
export type { CheckpointSpec } from './job/policy/policy.ts';
export type { RunOptions, RunSummary } from './job/runner.ts';
export { runJob } from './job/runner.ts';
export { shutdownOnSignals } from './job/shutdown.ts';
export type { JsonObject, JsonValue } from './json.ts';
export { Secret, secret } from './secret.ts';
export { fromArray } from './source/array.ts';
export { fromAsyncIterable } from './source/async-iterable.ts';
export { csvFile } from './source/csv.ts';
export { HttpSourceError, httpPages } from './source/http-pages.ts';
export { ndjsonFile } from './source/ndjson.ts';
export { range } from './source/range.ts';
export type { Source } from './source/source.ts';
// sqlTable imports its database's driver only when it reads (a URL names which), so it sits here.
export { sqlTable } from './source/sql/sql-table.ts';
export { jetStream } from './source/stream/jetstream.ts';
export { pgChanges } from './source/stream/pg-changes.ts';
export { redisStream } from './source/stream/redis-stream.ts';
export { openStore } from './store/open-store.ts';
