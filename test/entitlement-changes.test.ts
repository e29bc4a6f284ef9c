// examples/entitlement-changes.ts on a PostgreSQL of this file's own (wal_level = logical): a run
// applies the day's changes and completes, the next (incremental) goes on; then followers with
// --follow: one SIGKILLed mid-way, the next showing its lag in `ckpt status --json` (above 0
// while behind, 0 once caught up) and stopping with SIGTERM (exit 3). Throughout, the store's
// actual_entitlements equals the grants table and each deleted grant was revoked exactly once.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { changeGrants, setupSource } from '../examples/entitlement-changes.ts';
import { ExitCode } from '../src/errors.ts';
import { lagReader, repoRoot, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { logicalPostgresPerFile } from './helpers/logical-postgres.ts';

const pg = logicalPostgresPerFile(2);
const { skip } = pg;

type Grant = { grant_id: number; user_name: string; entitlement: string };

function actual(store: string): Grant[] {
  const file = new DatabaseSync(store, { readOnly: true, timeout: 5000 });
  try {
    return (file.prepare('SELECT grant_id, user_name, entitlement FROM actual_entitlements ORDER BY grant_id').all() as Grant[]).map((row) => ({ ...row }));
  } catch {
    return [];
  } finally {
    file.close();
  }
}

async function grants(): Promise<Grant[]> {
  return (await pg.db.query('SELECT id AS grant_id, user_name, entitlement FROM grants ORDER BY id')).rows as Grant[];
}

/** Every grant ever made and no longer there was revoked, once (grant_id is the revocations' key); none other. */
async function assertRevokedOnce(): Promise<number> {
  const made = Number((await pg.db.query("SELECT coalesce(last_value, 0) AS n FROM pg_sequences WHERE sequencename = 'grants_id_seq'")).rows[0]?.n);
  const present = new Set((await grants()).map((grant) => grant.grant_id));
  const revoked = (await pg.db.query('SELECT grant_id FROM access_revocations ORDER BY grant_id')).rows.map((row) => Number(row.grant_id));
  const gone = [];
  for (let id = 1; id <= made; id++) if (!present.has(id)) gone.push(id);
  assert.deepEqual(revoked, gone, 'each deleted grant revoked once, no other');
  return revoked.length;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test('entitlement-changes: the feed keeps actual_entitlements equal to grants and revokes each deleted grant once; a follower shows its lag', {
  skip,
  timeout: 240_000,
}, async (t) => {
  await setupSource(pg.server.url);
  const store = join(tempDir('ckpt-entitlement-changes-'), 'store.db');
  const example = join(repoRoot, 'examples', 'entitlement-changes.ts');
  const args = ['run', example, '--store', `sqlite:${store}`, '--param', `source=${pg.server.url}`];

  await changeGrants(pg.server.url, 120);
  const first = await runCli([...args, '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(actual(store), await grants());
  assert.ok((await assertRevokedOnce()) > 0);

  await changeGrants(pg.server.url, 40);
  const second = await runCli([...args, '--quiet']);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(actual(store), await grants(), 'the next run went on from where the first ended');
  await assertRevokedOnce();

  // Following, 20 ms a change: killed mid-way, then resumed by a second follower.
  const follow = [...args, '--follow', '--every-ms', '300', '--quiet'];
  const env = { ENTITLEMENTS_DELAY_MS: '20' };
  const killed = spawnCli(follow, { env });
  const before = actual(store).length;
  await changeGrants(pg.server.url, 200);
  await until('the follower at work', () => actual(store).length !== before);
  await sleep(300 + Math.random() * 500);
  killed.child.kill('SIGKILL');
  assert.equal((await killed.done).signal, 'SIGKILL');

  const follower = spawnCli(follow, { env });
  const { lags, now: lagNow } = lagReader(store);
  await until('a lag above 0', async () => ((await lagNow()) ?? 0) > 0);
  await until('actual_entitlements equal to grants', async () => JSON.stringify(actual(store)) === JSON.stringify(await grants()));
  await until('the lag back at 0', async () => (await lagNow()) === 0);
  follower.child.kill('SIGTERM');
  const ended = await follower.done;
  assert.equal(ended.code, ExitCode.interrupted, ended.stderr);
  assert.deepEqual(actual(store), await grants());
  const revoked = await assertRevokedOnce();
  assert.ok(Math.max(...lags) > 0 && lags.at(-1) === 0, `lags seen: ${lags.join(', ')}`);
  t.diagnostic(`${(await grants()).length} grants, ${revoked} revoked; lags seen ${lags.join(', ')}`);
});
