import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { CheckpointedError, ExitCode, UsageError } from '../errors.ts';
import { planJob } from '../job/guard/plan-run.ts';
import { shutdownOnSignals } from '../job/shutdown.ts';
import type { Store, StoredPlan } from '../store/store.ts';
import { approverName } from './approver-name.ts';
import { formatCount, formatParams, formatTime } from './format.ts';
import { loadJob, parseParams } from './load-job.ts';
import { type CliIo, openCliStore } from './shared.ts';

export interface PlanCommandOptions {
  store?: string;
  param: string[];
  json?: boolean;
  show?: string;
  approve?: string;
  by?: string;
  reason?: string;
  /** How many effects `--show` lists (default 20); `--all` lists every one. */
  limit?: number;
  all?: boolean;
}

/**
 * `ckpt plan <job-file>`: run the job with its effects recorded, not performed, and store the
 * plan; `ckpt plan --show <id>`: print a stored plan for review; `ckpt plan --approve <id> --by
 * NAME`: approve it (an audit event in the instance's chain).
 */
export async function planCommand(file: string | undefined, options: PlanCommandOptions, io: CliIo): Promise<number> {
  const chosen = [file !== undefined, options.show !== undefined, options.approve !== undefined].filter(Boolean).length;
  if (chosen !== 1) throw new UsageError('give one of: a job file to plan, --show <plan-id>, or --approve <plan-id> --by NAME');
  if (options.approve !== undefined && (options.by === undefined || approverName(options.by) === '')) {
    throw new UsageError('--approve needs --by NAME: the person who reviewed the plan');
  }
  if (file !== undefined) return makePlan(file, options, io);
  const store = await openCliStore(options.store, { existing: true });
  try {
    const id = (options.show ?? options.approve) as string;
    const plan = await findPlan(store, id);
    if (options.approve !== undefined) return await approve(store, plan, options, io);
    if (options.json) io.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    else io.stdout.write(describePlan(plan, options.all ? Number.POSITIVE_INFINITY : (options.limit ?? 20)));
    return ExitCode.completed;
  } finally {
    await store.close();
  }
}

async function makePlan(file: string, options: PlanCommandOptions, io: CliIo): Promise<number> {
  const shutdown = shutdownOnSignals({
    onFirst: () => undefined,
    onForce: () => process.exit(ExitCode.interrupted),
  });
  let store: Store | undefined;
  try {
    const job = await loadJob(file);
    store = await openCliStore(options.store);
    // Stored absolute: `ckpt apply` runs from wherever the operator is, and a relative path would
    // name another file there (or none).
    const plan = await planJob(job, { store, params: parseParams(options.param), jobFile: resolve(file), signal: shutdown.signal });
    if (options.json) io.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    else {
      io.stdout.write(describePlan(plan, options.all ? Number.POSITIVE_INFINITY : (options.limit ?? 20)));
      io.stdout.write(`apply exactly this plan with: ckpt apply ${plan.id}${options.store === undefined ? '' : ' --store <the same store>'}\n`);
    }
    return ExitCode.completed;
  } finally {
    shutdown.dispose();
    await store?.close();
  }
}

/** The plan of that id, or a one-line usage error. */
export async function findPlan(store: Store, id: string): Promise<StoredPlan> {
  const plan = /^[0-9a-f]{16}$/.test(id) ? await store.plan(id) : undefined;
  if (plan === undefined) throw new UsageError(`no plan ${id} on the store ${store.location}; ckpt plan <job-file> makes one and prints its id`);
  return plan;
}

/** Approvers named so far, one each. */
export function approvers(plan: StoredPlan): string[] {
  return [...new Set(plan.approvals.map((approval) => approverName(approval.by)))];
}

async function approve(store: Store, plan: StoredPlan, options: PlanCommandOptions, io: CliIo): Promise<number> {
  const by = approverName(options.by as string);
  const osUser = userInfo().username;
  // Before the approval is stored: a keyed log its plan:approved event could not extend (the key
  // unset or another) refuses here, not after an approval the audit log never records.
  await store.checkChainKey(plan.instanceId);
  const approved = await store.approvePlan(plan.id, { by, osUser, reason: options.reason ?? null, at: Date.now() });
  if (approved === undefined) throw new CheckpointedError(`plan ${plan.id} is gone from the store`, ExitCode.failed);
  const count = approvers(approved).length;
  await store.appendEvents(plan.instanceId, plan.generation, [
    {
      type: 'plan:approved',
      data: { plan: plan.id, by, osUser, reason: options.reason ?? null, approvals: count, required: approved.approvalsRequired },
    },
  ]);
  const left = Math.max(0, approved.approvalsRequired - count);
  io.stdout.write(
    `plan ${plan.id} approved by ${by} (OS user ${osUser}); ${count} of ${approved.approvalsRequired} approvals required` +
      (left > 0 ? `: ${left} more, by another name, before ckpt apply ${plan.id}\n` : `: apply it with ckpt apply ${plan.id}\n`),
  );
  return ExitCode.completed;
}

/** A plan as a reviewer reads it: what, for which instance, how many of each kind, then the effects. */
export function describePlan(plan: StoredPlan, limit: number): string {
  const lines: string[] = [];
  lines.push(`plan ${plan.id}: ${plan.job} ${formatParams(plan.params)}, generation ${plan.generation}, made ${formatTime(plan.createdAt)}`);
  lines.push(`  job file: ${plan.jobFile}`);
  lines.push(`  hash: ${plan.hash}`);
  lines.push(
    `  read ${formatCount(plan.records)} records${plan.failed > 0 ? `; ${formatCount(plan.failed)} failed in the plan run (an apply would fail or dead-letter them)` : ''}`,
  );
  for (const failure of plan.failures) lines.push(`    failed: ${failure.shard}@${failure.position}: ${failure.error}`);
  const kinds = Object.entries(plan.counts).sort(([a], [b]) => a.localeCompare(b));
  lines.push(`  effects: ${formatCount(plan.effects.length)}${kinds.length === 0 ? ' (none)' : ''}`);
  for (const [kind, count] of kinds) {
    const targets = [...new Set(plan.effects.filter((effect) => effect.kind === kind).map((effect) => effect.target ?? '-'))].join(', ');
    lines.push(`    ${kind.padEnd(16)} ${formatCount(count).padStart(9)}   target: ${targets}`);
  }
  const names = approvers(plan);
  if (plan.approvalsRequired > 0 || names.length > 0) {
    const by = plan.approvals.map(
      (approval) => `${approval.by} (${approval.osUser}, ${formatTime(approval.at)}${approval.reason ? `: ${approval.reason}` : ''})`,
    );
    lines.push(`  approvals: ${names.length} of ${plan.approvalsRequired} required${by.length > 0 ? `: ${by.join('; ')}` : ''}`);
    if (names.length < plan.approvalsRequired) lines.push(`    approve with: ckpt plan --approve ${plan.id} --by NAME --reason TEXT`);
  }
  const shown = plan.effects.slice(0, limit);
  if (shown.length > 0) lines.push(`  ${shown.length === plan.effects.length ? 'every effect' : `first ${shown.length} effects (--all for every one)`}:`);
  for (const effect of shown) {
    const scope = effect.scope === 'instance' ? ' [instance]' : '';
    lines.push(`    ${effect.shard}  ${effect.kind}  ${effect.key}${scope}${effect.describe === null ? '' : `  — ${effect.describe}`}`);
  }
  return `${lines.join('\n')}\n`;
}
