// Rotate the API key of every app: issue a new key → put it in the app's config → check the app
// authenticates with it → revoke the old key. Each step is a ctx.step, so after a crash a
// finished step returns its recorded result instead of running again; the issue passes an
// idempotency key, so even a crash inside it cannot mint a second key; the revoke is a ctx.once
// whose `verify` asks the service, so it is never blindly replayed. The new key's secret is a
// secret(): it is sealed in the effect journal and prints as [redacted] everywhere.
//
//   ckpt run examples/rotate-keys.ts --param apps=8
//   ckpt events rotate-keys
//
// Under `ckpt chaos`, which approves the revoke phase as told or checks that the job holds there:
//
//   ckpt chaos examples/rotate-keys.ts --kills 10 --approve revoke-phase
//   ckpt chaos examples/rotate-keys.ts --kills 10 --expect-hold point:revoke-phase
//
// The key service lives in $CKPT_CHAOS_DIR when `ckpt chaos` runs the job (a fresh one per chaos
// run), else in examples/data/keys.db, or --param service=PATH.
//
// ROTATE_KEYS_CRASH_AT=<app>:<after-step> SIGKILLs the process at that step boundary (the crash test uses it).
import { join } from 'node:path';
import { defineJob, fromArray, type JobContext, type Secret, secret } from 'checkpointed';
import type { ChaosCheckInput } from 'checkpointed/types';
import { FakeKeyService } from './fake-key-service.ts';

type Params = { apps: number; service: string };

function crashPoint(app: string, boundary: string): void {
  if (process.env.ROTATE_KEYS_CRASH_AT === `${app}:${boundary}`) process.kill(process.pid, 'SIGKILL');
}

let service: FakeKeyService | undefined;
const keyService = (params: Params) => {
  service ??= new FakeKeyService(params.service);
  return service;
};

export default defineJob<string, Params>({
  name: 'rotate-keys',
  version: '1',
  params: (raw) => {
    const apps = Number(raw.apps ?? 8);
    if (!Number.isSafeInteger(apps) || apps < 1) throw new Error(`apps must be a whole number ≥ 1 (got ${JSON.stringify(raw.apps)})`);
    const home = process.env.CKPT_CHAOS_DIR ?? join(import.meta.dirname, 'data');
    return { apps, service: raw.service ?? join(home, 'keys.db') };
  },
  source: ({ params }) => fromArray(keyService(params).seed(params.apps)),
  checkpoint: { every: 2 },
  concurrency: 2,
  async process(app: string, ctx: JobContext<Params, { [key: string]: never }>) {
    const keys = keyService(ctx.params);
    const oldKeyId = await ctx.step('read-current', () => keys.currentKeyId(app));
    crashPoint(app, 'read-current');
    const issued = await ctx.step('issue', () => {
      const key = keys.issueKey(app, ctx.idempotencyKey('issue'));
      return { keyId: key.id, secret: secret(key.secret) as Secret<string> };
    });
    crashPoint(app, 'issue');
    await ctx.step('update-config', () => keys.setConfig(app, issued.keyId));
    crashPoint(app, 'update-config');
    await ctx.step('validate', () => keys.validate(app, issued.secret.reveal()));
    crashPoint(app, 'validate');
    // Revoking is the destructive phase: a person approves it once for the whole rotation
    // (`ckpt approve rotate-keys --point revoke-phase --by NAME --reason TEXT`); until then the
    // run is held here (exit 7) with every new key issued and validated, and nothing revoked.
    await ctx.approval('revoke-phase', { summary: `revoke the old key of each of ${ctx.params.apps} apps` });
    await ctx.once(`revoke:${app}:${oldKeyId}`, () => keys.revoke(oldKeyId, app), { verify: () => keys.isRevoked(oldKeyId) });
    crashPoint(app, 'revoke');
    ctx.log.info(`rotated ${app}: ${oldKeyId} → ${issued.keyId}`, { secret: issued.secret });
  },
});

/**
 * Checked by `ckpt chaos` at the end: every app authenticates with its configured key, and no app
 * was issued two keys by the rotation. Held at the revoke phase (`--expect-hold
 * point:revoke-phase`), nothing may have been revoked: the revoke is past the hold. Completed,
 * each app has exactly one live key, the new one, and its old one revoked.
 */
export function invariant({ params, held }: ChaosCheckInput): string | undefined {
  const keys = new FakeKeyService((params as Params).service);
  try {
    const all = keys.keys();
    const configs = keys.configs();
    if (configs.size !== (params as Params).apps) return `${configs.size} apps in the key service, ${(params as Params).apps} expected`;
    const revoked = all.filter((key) => key.status === 'revoked');
    if (held.includes('point:revoke-phase') && revoked.length > 0) {
      return `${revoked.length} keys revoked while the rotation was held before its revoke phase (${revoked[0]?.app} first): an effect past the hold`;
    }
    for (const [app, configured] of configs) {
      const mine = all.filter((key) => key.app === app);
      if (mine.find((key) => key.id === configured)?.status !== 'active')
        return `${app}'s configured key ${configured} is not active: the app cannot authenticate`;
      if (mine.filter((key) => key.issuedByRotation).length > 1)
        return `${app} was issued ${mine.filter((key) => key.issuedByRotation).length} keys by one rotation`;
      if (held.length === 0) {
        const live = mine.filter((key) => key.status === 'active');
        if (live.length !== 1 || !live[0]?.issuedByRotation) return `${app} has ${live.length} live keys after the rotation (exactly its new one expected)`;
      }
    }
    return undefined;
  } finally {
    keys.close();
  }
}
