/**
 * The public API: what a job author and a program embedding runJob use. Store backends have
 * their own import paths ('checkpointed/sqlite', 'checkpointed/postgres'), so importing this
 * loads no database driver; openStore imports a backend only for a URL that names it.
 *
 * @module checkpointed
 */
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
  StoreIdentityError,
  StoreUnavailableError,
  UsageError,
} from './errors.ts';
export type { EventListener, EventMap, EventType, RunEvent } from './events.ts';
export type { ChaosCheckInput, ChaosInvariant, ChaosPrepareInput, ChaosPrepareStore } from './job/chaos-check.ts';
export type { AnyJob, Job, JobContext, JobDefinition, JobLogger, OnceOptions, RetryOptions, SetupInput, VerifyResult } from './job/define.ts';
export { defineJob } from './job/define.ts';
export type { AutoBounds, IntervalChoice, IntervalReason } from './job/policy/auto-interval.ts';
export type { CheckpointPolicy, CheckpointSample, CheckpointSpec } from './job/policy/policy.ts';
export type { RunJobOutcome, RunOptions, RunSummary } from './job/runner.ts';
export { runJob } from './job/runner.ts';
export type { OnDrift } from './job/shard/drift.ts';
export type { ShardResult } from './job/shard/shard-types.ts';
export { shutdownOnSignals } from './job/shutdown.ts';
export type { JobSql, SqlResult } from './job/tx/job-sql.ts';
export type { TxHandle } from './job/tx/record-tx.ts';
export type { JsonObject, JsonValue } from './json.ts';
export { isSecret, REDACTED, Secret, secret } from './secret.ts';
export { fromArray } from './source/array.ts';
export type { FromAsyncIterableOptions, IterableRecords } from './source/async-iterable.ts';
export { fromAsyncIterable } from './source/async-iterable.ts';
export type { CsvOptions, CsvRecord } from './source/csv.ts';
export { csvFile } from './source/csv.ts';
export type { HttpHeaderValues, HttpPagesOptions, PagePosition } from './source/http-pages.ts';
export { HttpSourceError, httpPages } from './source/http-pages.ts';
export type { HttpRetryInfo, HttpRetryOptions } from './source/http-retry.ts';
export type { NdjsonOptions } from './source/ndjson.ts';
export { ndjsonFile } from './source/ndjson.ts';
export { range } from './source/range.ts';
export type { Lag, ReadOptions, Source, SourceCursor, SourceItem } from './source/source.ts';
// sqlTable imports its database's driver only when it reads (a URL names which), so it sits here.
export type { MysqlQuerier, PgQuerier, SqlConnection, SqlDialect } from './source/sql/sql-client.ts';
export type { SqlKey, SqlKeyValue, SqlTableOptions } from './source/sql/sql-table.ts';
export { sqlTable } from './source/sql/sql-table.ts';
export type { JetStreamMessage, JetStreamOptions } from './source/stream/jetstream.ts';
export { jetStream } from './source/stream/jetstream.ts';
export type { Lsn, PgChange, PgChangePosition, PgChangesOptions } from './source/stream/pg-changes.ts';
export { pgChanges } from './source/stream/pg-changes.ts';
export type { RedisStreamEntry } from './source/stream/redis-client.ts';
export type { RedisStreamOptions } from './source/stream/redis-stream.ts';
export { redisStream } from './source/stream/redis-stream.ts';
export { DEFAULT_STORE_URL, openStore } from './store/open-store.ts';
export type * from './store/store.ts';
