// Guarantee 4 on the key-rotation example: SIGKILL at each step boundary of examples/rotate-keys.ts (one kill per boundary,
// each at a different app), and inside the service calls (effect done, not yet recorded) →
// no app ends with two live keys or without a valid key, and no key is issued twice for an app.
// The revoke phase first waits for a person's approval (ctx.approval): held, nothing revoked, then released.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { repoRoot, runCli, tempDir } from './helpers/cli.ts';

const APPS = 10;
const crashes: [string, string][] = [
  ['ROTATE_KEYS_CRASH_AT', 'app-01:read-current'],
  ['ROTATE_KEYS_CRASH_AT', 'app-02:issue'],
  ['ROTATE_KEYS_CRASH_AT', 'app-03:update-config'],
  ['ROTATE_KEYS_CRASH_AT', 'app-04:validate'],
  ['ROTATE_KEYS_CRASH_AT', 'app-05:revoke'],
  // Inside the call: the service acted, the journal has only the intent.
  ['FAKE_KEYS_CRASH_AFTER', 'issue:app-06'],
  ['FAKE_KEYS_CRASH_AFTER', 'update:app-07'],
  ['FAKE_KEYS_CRASH_AFTER', 'validate:app-08'],
  ['FAKE_KEYS_CRASH_AFTER', 'revoke:app-09'],
];

test('key rotation survives a SIGKILL at every step boundary', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const service = join(dir, 'keys.db');
  const args = ['run', join(repoRoot, 'examples', 'rotate-keys.ts'), '--store', `sqlite:${join(dir, 'store.db')}`, '--concurrency', '1'];
  args.push('--param', `apps=${APPS}`, '--param', `service=${service}`, '--quiet');
  // The revoke phase waits for a person: held (exit 7) before any old key is revoked.
  const held = await runCli(args);
  assert.equal(held.code, 7, held.stderr);
  assert.match(
    held.stderr,
    /held: approval point revoke-phase \(revoke the old key of each of 10 apps\).*ckpt approve rotate-keys --param apps=10 --param service=\S+ --point revoke-phase --by NAME --reason TEXT/,
  );
  const before = new DatabaseSync(service, { readOnly: true });
  assert.equal(Number(before.prepare("SELECT count(*) AS n FROM keys WHERE status = 'revoked'").get()?.n), 0, 'nothing revoked before the approval');
  before.close();
  const store = `sqlite:${join(dir, 'store.db')}`;
  const approve = await runCli([
    'approve',
    'rotate-keys',
    '--store',
    store,
    '--param',
    `apps=${APPS}`,
    '--param',
    `service=${service}`,
    '--point',
    'revoke-phase',
    '--by',
    'sec-lead',
    '--reason',
    'quarterly rotation',
  ]);
  assert.equal(approve.code, 0, approve.stderr);
  assert.match(approve.stdout, /released point:revoke-phase of rotate-keys/);
  for (const [variable, point] of crashes) {
    const result = await runCli(args, { env: { [variable]: point } });
    assert.equal(result.signal, 'SIGKILL', `the run was killed at ${point}: exit ${result.code} ${result.stderr}`);
  }
  const final = await runCli(args);
  assert.equal(final.code, 0, final.stderr);

  const db = new DatabaseSync(service, { readOnly: true });
  const keys = db.prepare('SELECT id, app, secret, status, idempotency_key FROM keys ORDER BY app, created_at').all() as {
    id: string;
    app: string;
    secret: string;
    status: string;
    idempotency_key: string | null;
  }[];
  const apps = db.prepare('SELECT app, config_key_id FROM apps ORDER BY app').all() as { app: string; config_key_id: string }[];
  db.close();
  assert.equal(apps.length, APPS);
  for (const { app, config_key_id } of apps) {
    const mine = keys.filter((key) => key.app === app);
    const live = mine.filter((key) => key.status === 'active');
    assert.equal(live.length, 1, `${app} has exactly one live key: ${JSON.stringify(mine)}`);
    assert.equal(live[0]?.id, config_key_id, `${app}'s config holds its live key`);
    assert.equal(mine.filter((key) => key.idempotency_key !== null).length, 1, `${app}: exactly one key issued by the rotation`);
    assert.equal(mine.length, 2, `${app}: its original key (now revoked) and the new one`);
  }
  // The new keys' secrets were sealed in the journal: none is readable in the store's files.
  const storeFiles = readdirSync(dir).filter((name) => name.startsWith('store.db'));
  const stored = storeFiles.map((name) => readFileSync(join(dir, name)).toString('latin1')).join('\n');
  for (const key of keys) assert.ok(!stored.includes(key.secret), `secret of ${key.id} is not in the store files`);
});
