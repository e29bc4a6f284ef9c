/**
 * 'checkpointed/types': the types the root's functions take and return that the root does not
 * name itself, for a program that wants to name them: a job's parts and its retry and effect
 * options, the checkpoint policy, a run's and a shard's results, the events, each built-in
 * source's options and records, the Source contract's parts (for writing a source), and what
 * `ckpt chaos` hands a job file's `invariant`, `verify` and `prepare` exports. Types only: it
 * loads nothing.
 *
 * @module checkpointed/types
 */
export type { ErrorContext } from './errors.ts';
export type { EventListener, EventType } from './events.ts';
export type { ChaosCheckInput, ChaosInvariant, ChaosPrepareInput, ChaosPrepareStore } from './job/chaos-check.ts';
export type { AnyJob, EffectLimitSpec, JobLogger, OnceOptions, RetryOptions, SetupInput, VerifyResult } from './job/define.ts';
export type { AutoBounds, IntervalChoice, IntervalReason } from './job/policy/auto-interval.ts';
export type { CheckpointPolicy, CheckpointSample } from './job/policy/policy.ts';
export type { RunJobOutcome } from './job/runner.ts';
export type { OnDrift } from './job/shard/drift.ts';
export type { ShardResult } from './job/shard/shard-types.ts';
export type { JobSql, SqlResult } from './job/tx/job-sql.ts';
export type { TxHandle } from './job/tx/record-tx.ts';
export type { FromAsyncIterableOptions, IterableRecords } from './source/async-iterable.ts';
export type { CsvOptions, CsvRecord } from './source/csv.ts';
export type { HttpHeaderValues, HttpPagesOptions, PagePosition } from './source/http-pages.ts';
export type { HttpRetryInfo, HttpRetryOptions } from './source/http-retry.ts';
export type { NdjsonOptions } from './source/ndjson.ts';
export type { Lag, ReadOptions, SourceCursor, SourceItem } from './source/source.ts';
export type { MysqlQuerier, PgQuerier, SqlConnection, SqlDialect } from './source/sql/sql-client.ts';
export type { SqlKey, SqlKeyValue, SqlTableOptions } from './source/sql/sql-table.ts';
export type { JetStreamMessage, JetStreamOptions } from './source/stream/jetstream.ts';
export type { Lsn, PgChange, PgChangePosition, PgChangesOptions } from './source/stream/pg-changes.ts';
export type { RedisStreamEntry } from './source/stream/redis-client.ts';
export type { RedisStreamOptions } from './source/stream/redis-stream.ts';
