/**
 * The few error classes of checkpointed. Each carries its context and a message that tells the
 * user what to do; `exitCode` is the documented exit code the CLI ends with.
 *
 * Exit codes: 0 completed (or already complete), 1 failed, 2 usage or config error,
 * 3 interrupted with a checkpoint saved, 4 refused (held by a live worker, drift, newer schema),
 * 5 and 6 `ckpt chaos`'s, 7 held: a guard holds the instance (an effect limit reached, an approval point not yet
 * approved, or `ckpt apply` held effects its plan did not contain): not a failure, it waits for a person.
 */
export const ExitCode = {
  completed: 0,
  failed: 1,
  usage: 2,
  interrupted: 3,
  refused: 4,
  /** `ckpt chaos` found a violation (named in its report). */
  violation: 5,
  /** `ckpt chaos` could not land the kills asked on a running job (how many landed, and why, in its report). */
  chaosShort: 6,
  /**
   * Held, not failed: a guard holds the instance (an effect limit reached, an approval point of
   * `ctx.approval`: `ckpt approve` releases it), or an effect waits for a person (`ckpt apply` held
   * effects its plan did not contain). Nothing past the guard ran.
   */
  held: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorContext {
  job?: string;
  shard?: string;
  position?: unknown;
  cause?: unknown;
}

/** Base class: an error whose message is meant for the user, printed as one line, no stack. */
export class CheckpointedError extends Error {
  readonly exitCode: ExitCode;
  readonly job: string | undefined;
  readonly shard: string | undefined;
  readonly position: unknown;
  constructor(message: string, exitCode: ExitCode, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.job = context.job;
    this.shard = context.shard;
    this.position = context.position;
  }
}

/** Bad flag, bad param, missing or malformed job file, malformed store URL. Exit 2. */
export class UsageError extends CheckpointedError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, ExitCode.usage, context);
  }
}

/** The store cannot be opened or used as asked (unwritable path, not a database). Exit 2. */
export class StoreError extends CheckpointedError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, ExitCode.usage, context);
  }
}

/**
 * The store stayed unreachable (connection refused or reset, database restarting, SQLite busy)
 * after every retry. Nothing was lost: the last checkpoint stands and a rerun resumes. Exit 1.
 */
export class StoreUnavailableError extends CheckpointedError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, ExitCode.failed, context);
  }
}

/**
 * A statement of the job's transaction waited past its bound (the lease, at least 5 s) for rows
 * another session holds, most likely the shard's previous holder, cut off with its transaction
 * open: the server ends that session within a lease of its silence. A lease matter, not an
 * outage: the shard run ends, and the shard is claimed again and resumed from its checkpoint.
 */
export class RowsLockedError extends StoreUnavailableError {}

/** A store written by a newer checkpointed: unsafe to continue. Exit 4. */
export class SchemaTooNewError extends CheckpointedError {
  readonly found: number;
  readonly supported: number;
  constructor(found: number, supported: number, where: string) {
    super(
      `the store at ${where} has schema version ${found}, newer than version ${supported} that this checkpointed understands; ` +
        'it is unsafe to continue: upgrade checkpointed or use another store',
      ExitCode.refused,
    );
    this.found = found;
    this.supported = supported;
  }
}

/**
 * The store lost its checkpoints but kept its effect journal or event log (a zeroed or deleted
 * file, an emptied table): taken for a new store, it would start over and run effects again. Exit 4.
 */
export class StoreIdentityError extends CheckpointedError {
  constructor(message: string) {
    super(message, ExitCode.refused);
  }
}

/** Every unfinished shard is leased by a live worker. Exit 4. */
export class LeaseHeldError extends CheckpointedError {
  readonly holder: string;
  constructor(message: string, holder: string, context: ErrorContext = {}) {
    super(message, ExitCode.refused, context);
    this.holder = holder;
  }
}

/** A write presented a fencing token that is no longer the shard's: this worker lost its lease. */
export class FencedError extends CheckpointedError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, ExitCode.refused, context);
  }
}

/**
 * The newest checkpoint fails its checksum and the chunk behind it wrote through `ctx.tx`: those
 * rows are committed, so resuming from the checkpoint before would write them again. Exit 4.
 */
export class CorruptCheckpointError extends CheckpointedError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, ExitCode.refused, context);
  }
}

/** The checkpoint no longer matches its inputs (params, job version, source fingerprint). Exit 4. */
export class DriftError extends CheckpointedError {
  readonly changes: string[];
  constructor(message: string, changes: string[], context: ErrorContext = {}) {
    super(message, ExitCode.refused, context);
    this.changes = changes;
  }
}

/**
 * A guard holds the instance: the next effect of a kind would pass its limit (refused by the store
 * before `fn` ran), or the job reached an approval point not yet approved. The shard stops at its
 * last checkpoint; `ckpt approve` releases the hold. Exit 7. Never caught by a job: rethrow it.
 */
export class HeldError extends CheckpointedError {
  /** The hold's name: `limit:<kind>` or `point:<name>`. */
  readonly hold: string;
  constructor(message: string, hold: string, context: ErrorContext = {}) {
    super(message, ExitCode.held, context);
    this.hold = hold;
  }
}

/** A record's processing failed and could not be skipped. Exit 1. */
export class JobFailedError extends CheckpointedError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, ExitCode.failed, context);
  }
}

/** The first line of any thrown value, for one-line messages. */
export function firstLine(error: unknown): string {
  return describe(error).split('\n', 1)[0] ?? '';
}

/** An Error's message (its name when it has none); a thrown plain object as JSON, not "[object Object]". */
function describe(error: unknown): string {
  // `reject()` and `throw undefined` still fail: say so rather than print a bare "undefined".
  if (error === undefined) return 'undefined (thrown or rejected with no reason)';
  // A message getter that throws, a toString that does: the error is still the record's, and is
  // still described (and dead-lettered), not turned into a failure of the run.
  try {
    if (error instanceof Error) return error.message === '' ? error.name : String(error.message);
    const text = String(error);
    if (text !== '[object Object]') return text;
    try {
      return JSON.stringify(error) ?? text;
    } catch {
      return text;
    }
  } catch (thrown) {
    return `an error that cannot be read (reading it threw ${thrown instanceof Error ? thrown.name : typeof thrown})`;
  }
}
