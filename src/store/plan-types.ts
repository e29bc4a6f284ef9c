import type { JsonObject } from '../json.ts';

// The values of the plan and rate-bucket concerns of the Store contract (store.ts).

/** One effect a plan run found the job would perform (`ctx.once` / `ctx.step`, recorded, not performed). */
export interface PlannedEffect {
  shard: string;
  /** The effect's kind: `kind` in its options, else the key's prefix before `:` (a step: its name). */
  kind: string;
  key: string;
  /** `'instance'` for an instance-scoped key, else `'generation'`. */
  scope: 'generation' | 'instance';
  /** What the job says the effect does (`describe` in its options), for the reviewer. */
  describe: string | null;
  /** The target system it calls (`target` in its options), if it named one. */
  target: string | null;
}

/** An approval of a plan: who, under which OS user, why, when. */
export interface PlanApproval {
  by: string;
  osUser: string;
  reason: string | null;
  at: number;
}

/** What `ckpt plan` stores. */
export interface NewPlan {
  instanceId: number;
  job: string;
  /** The params as shown to people (secrets redacted). */
  params: JsonObject;
  paramsHash: string;
  /** The instance generation it was made against: an apply under another one is refused. */
  generation: number;
  /** The job file the plan ran, as given (an apply loads it unless told another). */
  jobFile: string;
  effects: PlannedEffect[];
  /** Effects by kind. */
  counts: { [kind: string]: number };
  /** Records the plan run read, and those whose `process` threw (first few kept in `failures`). */
  records: number;
  failures: { shard: string; position: string; error: string }[];
  failed: number;
  /** sha256 of the job, params hash, generation and every effect (shard, kind, scope, key, target) in order. */
  hash: string;
  /** Distinct approvers an apply needs (the job's `plan.approvals`; 0: none). */
  approvalsRequired: number;
}

/** A stored plan. Its id is the first 16 hex digits of its hash: the same plan stored twice is one. */
export interface StoredPlan extends NewPlan {
  id: string;
  createdAt: number;
  approvals: PlanApproval[];
}

/** What a take from a rate bucket granted: `granted` tokens now, and when the next one falls due. */
export interface TokenGrant {
  granted: number;
  /** ms until the bucket holds a token again (0 when it still does). */
  waitMs: number;
}
