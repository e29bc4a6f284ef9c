export type { ErrorContext } from './errors.ts';
export {
  CheckpointedError,
  DriftError,
  ExitCode,
  FencedError,
  JobFailedError,
  LeaseHeldError,
  SchemaTooNewError,
  StoreError,
  StoreUnavailableError,
  UsageError,
} from './errors.ts';
export type { EventListener, EventMap, EventType, RunEvent } from './events.ts';
export { persistedEvents } from './events.ts';
export type { AutoBounds, IntervalChoice, IntervalReason } from './job/auto-interval.ts';
export type { AnyJob, Job, JobContext, JobDefinition, JobLogger, OnceOptions, RetryOptions, SetupInput, VerifyResult } from './job/define.ts';
export { defineJob, isJob } from './job/define.ts';
export type { OnDrift } from './job/drift.ts';
export type { JobSql, SqlResult } from './job/job-sql.ts';
export { sqlQuery } from './job/job-sql.ts';
export type { CheckpointPolicy, CheckpointSample, CheckpointSpec } from './job/policy.ts';
export { checkpointPolicy } from './job/policy.ts';
export type { RunJobOutcome, RunOptions, RunSummary } from './job/runner.ts';
export { defaultWorker, runJob } from './job/runner.ts';
export type { ShardResult } from './job/shard-run.ts';
export { shutdownOnSignals } from './job/shutdown.ts';
export type { JsonObject, JsonValue } from './json.ts';
export { isSecret, REDACTED, Secret, secret } from './secret.ts';
export { fromArray } from './source/array.ts';
export type { NdjsonOptions } from './source/ndjson.ts';
export { ndjsonFile } from './source/ndjson.ts';
export { range } from './source/range.ts';
export type { Source, SourceItem } from './source/source.ts';
export { MemoryStore } from './store/memory/memory-store.ts';
export type { StoreTarget } from './store/open-store.ts';
export { DEFAULT_STORE_URL, openStore, parseStoreUrl } from './store/open-store.ts';
export type { PgPool, PgPoolClient, PgQueryable, PgResult } from './store/postgres/postgres-driver.ts';
export type { PostgresStoreOptions } from './store/postgres/postgres-store.ts';
export { PostgresStore } from './store/postgres/postgres-store.ts';
export type { SqliteStoreOptions } from './store/sqlite/sqlite-store.ts';
export { SqliteStore } from './store/sqlite/sqlite-store.ts';
export type * from './store/store.ts';
