import type { HoldInfo } from '../../store/store.ts';

// How a hold is said, the same in the run's failure line, `ckpt status`, `ckpt runs` and the dashboard.

/** "2 approvals needed (1 given: alice)". */
export function describeApprovals(hold: Pick<HoldInfo, 'approvals' | 'required'>): string {
  const given = hold.approvals.length;
  const who = given > 0 ? `: ${hold.approvals.map((approval) => approval.by).join(', ')}` : '';
  return `${hold.required} approval${hold.required === 1 ? '' : 's'} needed (${given} given${who})`;
}

/** Which guard holds and how far it got: "the limit on disable effects is reached (100 of 100 started)". */
export function describeGuard(hold: Pick<HoldInfo, 'kind' | 'name' | 'detail'>): string {
  const { detail } = hold;
  return hold.kind === 'limit'
    ? `the limit on ${String(detail.kind)} effects is reached (${Number(detail.used)} of ${Number(detail.max) + Number(detail.raised ?? 0)} started)`
    : `approval point ${hold.name.slice('point:'.length)}${typeof detail.summary === 'string' ? ` (${detail.summary})` : ''}`;
}

/** Which guard holds, how far it got, the approvals so far, and what to run next. */
export function describeHold(hold: HoldInfo): string {
  const { detail } = hold;
  const what = describeGuard(hold);
  const next = typeof detail.next === 'string' ? `; approve with: ${detail.next}, then run again` : '';
  return `held: ${what}; ${describeApprovals(hold)}${next}`;
}
