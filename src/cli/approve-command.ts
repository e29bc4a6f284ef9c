import { userInfo } from 'node:os';
import { UsageError } from '../errors.ts';
import { describeApprovals, describeHold } from '../job/guard/hold-text.ts';
import type { HoldInfo, InstanceInfo } from '../store/store.ts';
import { approverName, checkApprovalSizes } from './approver-name.ts';
import { formatParams } from './format.ts';
import { parseParams } from './load-job.ts';
import { type CliIo, findInstances, openCliStore } from './shared.ts';

export interface ApproveOptions {
  store?: string;
  param: string[];
  /** `kind=+N`: raise a held limit by N. */
  raise?: string;
  /** The approval point (`ctx.approval(name)`) to release. */
  point?: string;
  by?: string;
  reason?: string;
  json?: boolean;
}

/**
 * `ckpt approve <job> [--param k=v] (--raise kind=+N | --point NAME) --by NAME --reason TEXT`:
 * one person's approval of what holds the instance (a chained `guard:approved` event, with the
 * OS user beside the name given). The approval that brings a hold to the number the job requires
 * releases it; the next `ckpt run` continues.
 */
export async function approveCommand(job: string, options: ApproveOptions, io: CliIo): Promise<number> {
  const by = options.by === undefined ? undefined : approverName(options.by);
  const reason = options.reason?.trim();
  if (!by) throw new UsageError('ckpt approve needs --by NAME: who approves (recorded in the audit log)');
  if (!reason) throw new UsageError('ckpt approve needs --reason TEXT: why (recorded in the audit log)');
  checkApprovalSizes(by, reason);
  if ((options.raise === undefined) === (options.point === undefined)) {
    throw new UsageError('ckpt approve needs one of --raise kind=+N (a held limit) or --point NAME (an approval point)');
  }
  const raise = options.raise === undefined ? undefined : parseRaise(options.raise);
  const name = raise === undefined ? `point:${options.point}` : `limit:${raise.kind}`;
  const store = await openCliStore(options.store, { existing: true });
  try {
    const instances = await findInstances(store, job, parseParams(options.param));
    if (instances.length > 1) {
      throw new UsageError(
        `${instances.length} instances of ${job} match; pick one with --param k=v (${instances.map((instance) => formatParams(instance.params)).join(' or ')})`,
      );
    }
    const instance = instances[0] as InstanceInfo;
    const label = `${instance.job} ${formatParams(instance.params)}`.replace(/ -$/, '');
    const outcome = await store.approve(instance.id, instance.generation, {
      name,
      by,
      osUser: osUser(),
      reason,
      raise: raise?.amount ?? null,
    });
    if (outcome.outcome === 'not-held') {
      const open = outcome.holds.map((hold) => hold.name).join(', ');
      throw new UsageError(
        `${label} is not held at ${name} (generation ${instance.generation})${open === '' ? ': nothing holds it' : `; it is held at ${open}`}; see ckpt status`,
      );
    }
    if (outcome.outcome === 'already-approved') {
      throw new UsageError(
        `${by} already approved ${name} of ${label} (round ${outcome.hold.round}); ${describeApprovals(outcome.hold)}: another person must approve`,
      );
    }
    if (outcome.outcome === 'other-raise') {
      throw new UsageError(
        `${name} of ${label} has a pending raise of +${outcome.pending} from ${outcome.hold.approvals.map((approval) => approval.by).join(', ')}; approve the same raise (--raise ${raise?.kind}=+${outcome.pending}) or wait for it to be released`,
      );
    }
    const { hold, released } = outcome;
    if (options.json) {
      io.stdout.write(`${JSON.stringify({ job: instance.job, params: instance.params, generation: instance.generation, released, hold }, null, 2)}\n`);
      return 0;
    }
    io.stdout.write(`${released ? releasedLine(label, hold) : pendingLine(label, hold, by)}\n`);
    return 0;
  } finally {
    await store.close();
  }
}

function releasedLine(label: string, hold: HoldInfo): string {
  const raise = hold.approvals.find((approval) => approval.raise !== null)?.raise;
  const what =
    hold.kind === 'limit' ? `the limit on ${String(hold.detail.kind)} raised by ${raise}` : `approval point ${hold.name.slice('point:'.length)} passed`;
  return `released ${hold.name} of ${label}: ${what}, approved by ${hold.approvals.map((approval) => approval.by).join(', ')}; run the job again to continue`;
}

function pendingLine(label: string, hold: HoldInfo, by: string): string {
  return `approval by ${by} recorded for ${hold.name} of ${label}; still ${describeHold(hold)}`;
}

/**
 * `disable=+500` (the `+` may be left out). The kind is everything before the last `=`: a job may
 * name a kind with spaces or an `=` in it (`send mail`), and the command its hold prints quotes it.
 */
export function parseRaise(text: string): { kind: string; amount: number } {
  const match = /^(.+)=\+?(\d+)$/s.exec(text.trim());
  const amount = match === null ? Number.NaN : Number(match[2]);
  if (match === null || !Number.isSafeInteger(amount) || amount < 1) {
    throw new UsageError(`--raise must be kind=+N with N a whole number ≥ 1, such as disable=+500 (got ${JSON.stringify(text)})`);
  }
  return { kind: match[1] as string, amount };
}

/** Who is logged in, beside the name given with --by (null where the OS cannot say). */
export function osUser(): string | null {
  try {
    return userInfo().username;
  } catch {
    return null;
  }
}
