import { UsageError } from '../errors.ts';
import { describeGuard } from '../job/guard/hold-text.ts';
import { openStore } from '../store/open-store.ts';
import type { EffectCount, HoldInfo, InstanceInfo, Store } from '../store/store.ts';
import { osUser, parseRaise } from './approve-command.ts';

/**
 * What `ckpt chaos` was told to do when the job holds (exit 7): pass an approval point
 * (`--approve NAME`), raise a limit (`--raise kind=+N`), each time the job holds there, as
 * chaos approvers; or expect the job to end held there (`--expect-hold NAME`) and check that it
 * does, again after kills. Holds are named as the store names them: `point:<name>`, `limit:<kind>`.
 */
export interface HoldOrders {
  /** `point:<name>` of each `--approve`. */
  approve: ReadonlySet<string>;
  /** `limit:<kind>` of each `--raise`, and by how much each time it holds. */
  raise: ReadonlyMap<string, number>;
  /** Each `--expect-hold`. */
  expect: ReadonlySet<string>;
}

/** A hold a run ended at, and what chaos did about it. */
export interface HoldMet {
  /** The hold: `point:<name>` or `limit:<kind>`. */
  hold: string;
  /** The hold's own round (a limit reached again after a raise opens the next). */
  holdRound: number;
  /** Which guard holds, how far it got (as `ckpt status` says it). */
  what: string;
  /** Passed or raised by chaos approvers; expected (the job ends held there); or not told. */
  action: 'approved' | 'expected' | 'not-told';
  /** The chaos approvers who approved it (as many as the job's `approvals` needs). */
  by: string[];
  raise: number | null;
  /** The flag that told chaos what to do there, or null. */
  flag: string | null;
  /** A limit's kind, its `max` before raises (a `maxPercent` resolved) and the effects started when it held. */
  limit: { kind: string; max: number; used: number } | null;
}

/** How a held run ends for chaos: every hold approved (run again), held where expected, or held where it was not told what to do. */
export type HoldVerdict = 'go-on' | 'held' | 'not-told';

/** The names chaos approves as, one per approval a hold needs: `ckpt-chaos-1`, `ckpt-chaos-2`, … */
export const CHAOS_APPROVER = 'ckpt-chaos';

export function parseHoldOrders(options: { approve?: string[]; raise?: string[]; expectHold?: string[] }): HoldOrders {
  const approve = new Set<string>();
  for (const given of options.approve ?? []) {
    const name = given.trim().replace(/^point:/, '');
    if (!/^[\w.-]+$/.test(name))
      throw new UsageError(`--approve takes an approval point's name, as in ctx.approval('revoke-phase') (got ${JSON.stringify(given)})`);
    approve.add(`point:${name}`);
  }
  const raise = new Map<string, number>();
  for (const given of options.raise ?? []) {
    const { kind, amount } = parseRaise(given);
    if (raise.has(`limit:${kind}`)) throw new UsageError(`--raise ${kind}=… is given twice; give each kind once`);
    raise.set(`limit:${kind}`, amount);
  }
  const expect = new Set<string>();
  for (const given of options.expectHold ?? []) {
    const name = given.trim();
    const hold = /^point:[\w.-]+$/.test(name) || /^limit:.+$/s.test(name) ? name : /^[\w.-]+$/.test(name) ? `point:${name}` : undefined;
    if (hold === undefined) {
      throw new UsageError(`--expect-hold takes a hold's name, point:NAME or limit:KIND, as ckpt status shows it (got ${JSON.stringify(given)})`);
    }
    if (approve.has(hold) || raise.has(hold))
      throw new UsageError(`${hold} is both approved and expected to hold; give one of --approve/--raise and --expect-hold for it`);
    expect.add(hold);
  }
  return { approve, raise, expect };
}

/** The flags that tell chaos what to do at the hold `name` (`point:…`, `limit:…`): approve it and go on, or expect it. */
export function whatToPass(hold: string): string {
  const name = hold.slice(hold.indexOf(':') + 1);
  const approve = hold.startsWith('point:')
    ? `--approve ${name} (pass it as a chaos approver and go on)`
    : `--raise ${name}=+N (raise it by N as a chaos approver and go on)`;
  return `${approve}, or --expect-hold ${hold} (check that the job holds there under the kills)`;
}

/** Said of a hold chaos was not told about: where, and what to pass. */
export function notToldLine(met: Pick<HoldMet, 'hold' | 'what'>): string {
  return `holds: ${met.what}, which ckpt chaos was not told about; pass ${whatToPass(met.hold)}`;
}

/** The flag that told chaos about `hold`, as the user gave it. */
export function flagFor(hold: string, orders: HoldOrders): string {
  const name = hold.slice(hold.indexOf(':') + 1);
  if (orders.approve.has(hold)) return `--approve ${name}`;
  const raise = orders.raise.get(hold);
  if (raise !== undefined) return `--raise ${name}=+${raise}`;
  return `--expect-hold ${hold}`;
}

/** A job instance's guards as one store shows them: its open holds and its effect counts. */
export interface HoldState {
  open: HoldInfo[];
  counts: EffectCount[];
}

/** The instance of `job` with these params on the store, if it has run there. */
async function instanceOf(store: Store, job: string, paramsHash: string): Promise<InstanceInfo | undefined> {
  return (await store.listInstances(job)).find((candidate) => candidate.paramsHash === paramsHash);
}

/** The holds of the instance's current generation that no approval has released yet. */
async function openHolds(store: Store, instance: InstanceInfo): Promise<HoldInfo[]> {
  return (await store.holds(instance.id, instance.generation)).filter((hold) => hold.releasedAt === null);
}

/** The open holds and effect counts of the instance's current generation. */
export async function holdState(url: string, job: string, paramsHash: string): Promise<HoldState> {
  const store = await openStore(url);
  try {
    const instance = await instanceOf(store, job, paramsHash);
    if (instance === undefined) return { open: [], counts: [] };
    return { open: await openHolds(store, instance), counts: await store.effectCounts(instance.id, instance.generation) };
  } finally {
    await store.close();
  }
}

/**
 * After a run ended held: each open hold chaos was told to approve is approved through the
 * store's `approve` (what `ckpt approve` calls), by as many distinct chaos approvers as it needs,
 * so the next run goes on; one it was told to expect ends the round held; any other is not told.
 */
export async function answerHolds(
  url: string,
  job: string,
  paramsHash: string,
  orders: HoldOrders,
  reason: string,
): Promise<{ verdict: HoldVerdict; met: HoldMet[] }> {
  const store = await openStore(url);
  try {
    const instance = await instanceOf(store, job, paramsHash);
    const open = instance === undefined ? [] : await openHolds(store, instance);
    if (open.length === 0) throw new Error(`a run of ${job} exited 7 (held), but its store shows no open hold`);
    const met: HoldMet[] = [];
    for (const hold of open) {
      const what = describeGuard(hold);
      const raise = orders.raise.get(hold.name) ?? null;
      const { detail } = hold;
      const limit = hold.kind === 'limit' && typeof detail.max === 'number' ? { kind: String(detail.kind), max: detail.max, used: Number(detail.used) } : null;
      if (instance === undefined || !(orders.approve.has(hold.name) || raise !== null)) {
        const expected = orders.expect.has(hold.name);
        met.push({
          hold: hold.name,
          holdRound: hold.round,
          what,
          action: expected ? 'expected' : 'not-told',
          by: [],
          raise: null,
          flag: expected ? flagFor(hold.name, orders) : null,
          limit,
        });
        continue;
      }
      const flag = flagFor(hold.name, orders);
      const by = await approveAll(store, instance, hold, raise, `${reason}: ${flag}`);
      met.push({ hold: hold.name, holdRound: hold.round, what, action: 'approved', by, raise, flag, limit });
    }
    const verdict: HoldVerdict = met.some((hold) => hold.action === 'not-told')
      ? 'not-told'
      : met.some((hold) => hold.action === 'expected')
        ? 'held'
        : 'go-on';
    return { verdict, met };
  } finally {
    await store.close();
  }
}

/** Approves `hold` by chaos approvers not yet among its approvals until it is released; their names. */
async function approveAll(store: Store, instance: InstanceInfo, hold: HoldInfo, raise: number | null, reason: string): Promise<string[]> {
  const given = new Set(hold.approvals.map((approval) => approval.by));
  const by: string[] = [];
  for (let n = 1; by.length + given.size < hold.required || by.length === 0; n++) {
    const name = `${CHAOS_APPROVER}-${n}`;
    if (given.has(name)) continue;
    const outcome = await store.approve(instance.id, instance.generation, { name: hold.name, by: name, osUser: osUser(), reason, raise });
    if (outcome.outcome !== 'recorded') {
      throw new Error(`ckpt chaos could not approve ${hold.name} as ${name}: ${outcome.outcome}`);
    }
    by.push(name);
    if (outcome.released) break;
  }
  return by;
}

/**
 * What a round's end says about its holds: expected to end held, it must end held at exactly
 * the expected holds (else the hold moved, or a crash let the job past it); and at no point may
 * more effects of a limited kind have started than its limit allowed (an effect past the hold).
 */
export function holdViolations(orders: HoldOrders, ended: 'completed' | 'held', state: HoldState, limits: ReadonlyMap<string, number>): string[] {
  const violations: string[] = [];
  const expected = [...orders.expect].sort();
  const held = state.open.map((hold) => hold.name).sort();
  if (expected.length > 0 && ended === 'completed') {
    violations.push(`the job completed without an approval of ${expected.join(', ')}, where its clean run held: a crash let it past the hold`);
  } else if (ended === 'held' && held.join(',') !== expected.join(',')) {
    violations.push(`the hold moved: the job ended held at ${held.join(', ') || 'nothing'}, where its clean run held at ${expected.join(', ')}`);
  }
  for (const count of state.counts) {
    const max = limits.get(count.kind);
    if (max !== undefined && count.used > max + count.raised) {
      violations.push(
        `an effect past the hold: ${count.used} ${count.kind} effects started, over the limit of ${max + count.raised} (${max}${count.raised > 0 ? ` raised by ${count.raised}` : ''})`,
      );
    }
  }
  return violations;
}

/** Each limited kind's `max`: the job's `limits` where it gives `max`, and the holds met (a `maxPercent` resolved there). */
export function limitsOf(jobLimits: { [kind: string]: { max?: number } } | undefined, met: HoldMet[]): Map<string, number> {
  const limits = new Map<string, number>();
  for (const [kind, spec] of Object.entries(jobLimits ?? {})) if (typeof spec.max === 'number') limits.set(kind, spec.max);
  for (const hold of met) if (hold.limit !== null) limits.set(hold.limit.kind, hold.limit.max);
  return limits;
}
