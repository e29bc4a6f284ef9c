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
// ROTATE_KEYS_CRASH_AT=<app>:<after-step> SIGKILLs the process at that step boundary (the crash test uses it).
import { join } from 'node:path';
import { defineJob, fromArray, type JobContext, type Secret, secret } from 'checkpointed';
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
    return { apps, service: raw.service ?? join(import.meta.dirname, 'data', 'keys.db') };
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
