import { CheckpointedError, ExitCode } from '../errors.ts';
import { formatPosition } from './format.ts';
import { parseParams } from './load-job.ts';
import { approvers, findPlan } from './plan-command.ts';
import { type RunCommandOptions, runCommand } from './run-command.ts';
import { type CliIo, openCliStore } from './shared.ts';

export interface ApplyCommandOptions extends Omit<RunCommandOptions, 'plan' | 'rerun'> {
  /** The job file, when not where the plan was made from. */
  job?: string;
}

/** The text a held record's dead letter starts with (see EffectHeldError). */
const HELD = 'held: effect ';

/**
 * The key a held record's dead letter names: everything between 'held: effect ' and what
 * EffectHeldError says of the plan, so a key with spaces is named whole (it was cut at its first).
 */
function heldKey(error: string, planId: string): string {
  const end = Math.max(error.lastIndexOf(` is not in plan ${planId}`), error.lastIndexOf(` differs from plan ${planId}`));
  return end < HELD.length ? error.slice(HELD.length) : error.slice(HELD.length, end);
}

/**
 * `ckpt apply <plan-id>`: run the plan's instance for real (a run like `ckpt run`, resumable
 * after a crash by the same command), performing only the plan's effects. An effect the plan did
 * not contain is held: named by an `effect:held` event, its record set aside as a dead letter,
 * and the command ends with exit 7. Refused (exit 4) while the plan lacks the approvals its job
 * requires, or when the instance moved to another generation since the plan.
 */
export async function applyCommand(planId: string, options: ApplyCommandOptions, io: CliIo): Promise<number> {
  const store = await openCliStore(options.store, { existing: true });
  let plan: Awaited<ReturnType<typeof findPlan>>;
  try {
    plan = await findPlan(store, planId);
  } finally {
    await store.close();
  }
  const names = approvers(plan);
  if (names.length < plan.approvalsRequired) {
    throw new CheckpointedError(
      `plan ${plan.id} needs ${plan.approvalsRequired} approvals by different people and has ${names.length}${names.length > 0 ? ` (${names.join(', ')})` : ''}; ` +
        `review it with ckpt plan --show ${plan.id}, then ckpt plan --approve ${plan.id} --by NAME --reason TEXT`,
      ExitCode.refused,
      { job: plan.job },
    );
  }
  // The plan's params as shown; a redacted one (a secret) must be given again with --param.
  const params = { ...Object.fromEntries(Object.entries(plan.params).map(([key, value]) => [key, String(value)])), ...parseParams(options.param) };
  const { job: jobFile, ...run } = options;
  const code = await runCommand(jobFile ?? plan.jobFile, { ...run, param: Object.entries(params).map(([key, value]) => `${key}=${value}`), plan }, io);
  if (code !== ExitCode.completed) return code;
  const after = await openCliStore(options.store, { existing: true });
  try {
    const held = (await after.listDeadLetters(plan.instanceId)).filter((letter) => letter.error.startsWith(HELD));
    if (held.length === 0) return code;
    if (!options.json) {
      io.stderr.write(
        `held ${held.length} effects that plan ${plan.id} did not contain as they are now (not performed; their records are dead letters, see ckpt events ${plan.job} for the effect:held events):\n`,
      );
      for (const letter of held.slice(0, 20)) io.stderr.write(`  ${letter.shard}@${formatPosition(letter.position)}: ${heldKey(letter.error, plan.id)}\n`);
      if (held.length > 20) io.stderr.write(`  … and ${held.length - 20} more (ckpt dlq ${plan.job})\n`);
      io.stderr.write(`review them; ckpt dlq ${plan.jobFile} --retry performs them\n`);
    } else io.stdout.write(`${JSON.stringify({ type: 'held', plan: plan.id, held: held.map((letter) => heldKey(letter.error, plan.id)) })}\n`);
    return ExitCode.held;
  } finally {
    await after.close();
  }
}
