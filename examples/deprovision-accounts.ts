// Deprovision service accounts: disable each through the directory's admin API, confirm it is
// disabled, record the confirmation. The disable is a ctx.once whose `verify` asks the directory,
// so a crash between the directory acting and the journal recording it is settled by asking,
// never by a blind second disable; the confirmation is a ctx.once too, so a finished one is not
// repeated. Nothing in the job enables an account, so a restart can never re-enable one.
//
//   ckpt run examples/deprovision-accounts.ts --param accounts=40
//   ckpt chaos examples/deprovision-accounts.ts --kills 25      # SIGKILLed 25 times, then checked
//
// Reviewed first, then exactly what was reviewed: `ckpt plan` runs it with every disable and
// confirmation recorded, not performed (the directory is not called); one person approves the
// plan; `ckpt apply` performs exactly those disables and holds any account that appeared since.
//
//   ckpt plan examples/deprovision-accounts.ts --param accounts=40     # prints the plan and its id
//   ckpt plan --approve <plan-id> --by ana --reason "ticket 4711"
//   ckpt apply <plan-id>
//
// Every worker on the store together sends at most 100 disables a second (`rateLimits`).
//
// And a blast-radius limit: no run disables more than 5,000 accounts (a source that lost its
// WHERE clause, a directory pointed at production) without two people approving more. At the
// 5,001st the instance is held (exit 7) and `ckpt status` says what to run:
//
//   ckpt approve deprovision-accounts --param accounts=6000 --raise disable=+1000 --by ana --reason "…"
//   (and a second --by, then run again)
//
// The fake directory lives in $CKPT_CHAOS_DIR when `ckpt chaos` runs the job (so each chaos run
// starts from a fresh directory), else in examples/data/directory.db, or --param directory=PATH.
import { join } from 'node:path';
import { defineJob, fromArray } from 'checkpointed';
import type { ChaosCheckInput } from 'checkpointed/types';
import { FakeDirectory } from './fake-directory.ts';

type Params = { accounts: number; directory: string; latencyMs: number };

let directory: FakeDirectory | undefined;
const directoryOf = (params: Params) => {
  directory ??= new FakeDirectory(params.directory, params.latencyMs);
  return directory;
};

export default defineJob<string, Params>({
  name: 'deprovision-accounts',
  version: '1',
  params: (raw) => {
    const accounts = Number(raw.accounts ?? 300);
    if (!Number.isSafeInteger(accounts) || accounts < 1) throw new Error(`accounts must be a whole number ≥ 1 (got ${JSON.stringify(raw.accounts)})`);
    const latencyMs = Number(raw.latencyMs ?? 10);
    if (!(latencyMs >= 0)) throw new Error(`latencyMs must be a number ≥ 0 (got ${JSON.stringify(raw.latencyMs)})`);
    const home = process.env.CKPT_CHAOS_DIR ?? join(import.meta.dirname, 'data');
    return { accounts, latencyMs, directory: raw.directory ?? join(home, 'directory.db') };
  },
  // Seeds the directory on first use; then every account it holds, new ones included.
  source: ({ params }) => {
    const api = directoryOf(params);
    api.seed(params.accounts);
    return fromArray(api.accounts().map((account) => account.id));
  },
  checkpoint: { every: 4 },
  concurrency: 4,
  rateLimits: { directory: { perSecond: 100 } },
  limits: { disable: { max: 5000 } },
  approvals: 2,
  plan: { approvals: 1 },
  async process(account, ctx) {
    const api = directoryOf(ctx.params);
    await ctx.once(`disable:${account}`, () => api.disable(account, ctx.idempotencyKey('disable')), {
      verify: async () => (await api.status(account)) === 'disabled',
      kind: 'disable',
      describe: `disable ${account} in the directory`,
      target: 'directory',
    });
    // Keyed by the account, not by its position (as a ctx.step would be): a plan's keys must
    // still match when accounts appear in the source before this one.
    await ctx.once(
      `confirm:${account}`,
      async () => {
        const status = await api.status(account);
        if (status !== 'disabled') throw new Error(`${account} is still ${status} after its disable`);
        return { confirmedAt: await api.confirm(account) };
      },
      { describe: `confirm ${account} is disabled` },
    );
  },
});

/**
 * Checked by `ckpt chaos` once the job has completed: every account disabled and confirmed, none
 * ever re-enabled, and no account sent a second disable unless the log shows the first was in
 * doubt and `verify` found it had not happened.
 */
export function invariant({ params, events }: ChaosCheckInput): string | undefined {
  const api = new FakeDirectory((params as Params).directory);
  try {
    const accounts = api.accounts();
    if (accounts.length !== (params as Params).accounts) return `${accounts.length} accounts in the directory, ${(params as Params).accounts} expected`;
    const active = accounts.filter((account) => account.status !== 'disabled');
    if (active.length > 0) return `${active.length} accounts still active: ${active.map((account) => account.id).join(', ')}`;
    const unconfirmed = accounts.filter((account) => account.confirmed_at === null);
    if (unconfirmed.length > 0) return `${unconfirmed.length} accounts disabled but never confirmed: ${unconfirmed.map((account) => account.id).join(', ')}`;
    const enabled = api.calls('enable');
    if (enabled.length > 0) return `${enabled[0]?.account} was re-enabled (${enabled.length} enable calls in all)`;
    const disables = new Map<string, number>();
    for (const call of api.calls('disable')) disables.set(call.account, (disables.get(call.account) ?? 0) + 1);
    const verifiedNotDone = new Set(
      events.filter((event) => event.type === 'effect:in-doubt' && event.data.resolution === 'verified-not-done').map((event) => String(event.data.key)),
    );
    for (const [account, count] of disables) {
      if (count > 1 && !verifiedNotDone.has(`disable:${account}`)) return `${account} was sent ${count} disables without an in-doubt verify in the log`;
    }
    return undefined;
  } finally {
    api.close();
  }
}
