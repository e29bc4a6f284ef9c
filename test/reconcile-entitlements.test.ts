// Guarantee 4: the reconciliation example is SIGKILLed several times mid-run and rerun until it
// completes. Then every tenant's directory matches the desired state, every grant and revoke was
// applied exactly once (the audit table has no unique key, so a double would show), and each
// tenant's checkpointed tally agrees with the audit table.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { desiredEntitlements, initialEntitlements } from '../examples/reconcile-entitlements.ts';
import { repoRoot, spawnCli, tempDir } from './helpers/cli.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const TENANTS = 6;
const USERS = 30;
const example = join(repoRoot, 'examples', 'reconcile-entitlements.ts');
type Rows = Record<string, unknown>[];

async function killAndRerun(storeUrl: string, query: (sql: string) => Promise<Rows>, checkpointsTable: string, shardsTable: string): Promise<number> {
  const args = ['run', example, '--store', storeUrl, '--param', `tenants=${TENANTS}`, '--param', `users=${USERS}`, '--param', 'latencyMs=2', '--quiet'];
  const changes = async () => Number((await query('SELECT count(*) AS c FROM entitlement_changes').catch(() => [{ c: 0 }]))[0]?.c ?? 0);
  let kills = 0;
  for (let attempt = 0; attempt < 20; attempt++) {
    const run = spawnCli(args);
    if (kills < 3) {
      // Kill once more changes have landed than at the last kill: always mid-run, never at the end.
      const before = await changes();
      let landed = false;
      const deadline = Date.now() + 30_000;
      while (!landed && Date.now() < deadline) {
        await sleep(40 + Math.random() * 80);
        landed = (await changes()) > before + 20;
      }
      const early = await Promise.race([run.done, sleep(0).then(() => undefined)]);
      if (early === undefined) {
        run.child.kill('SIGKILL');
        assert.equal((await run.done).signal, 'SIGKILL');
        kills++;
        continue;
      }
    }
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    break;
  }
  assert.equal(kills, 3, 'three kills landed mid-run');

  // Every tenant's directory is what policy says.
  const directory = await query('SELECT tenant, user_id, entitlement FROM directory_entitlements');
  const actual = new Set(directory.map((row) => `${row.tenant}/${row.user_id}/${row.entitlement}`));
  const expectedChanges = new Map<string, string>();
  const wanted = new Set<string>();
  for (let index = 0; index < TENANTS; index++) {
    const tenant = `tenant-${String(index).padStart(3, '0')}`;
    const initial = new Set(initialEntitlements(tenant, USERS).map((row) => `${tenant}/${row.user}/${row.entitlement}`));
    for (const record of desiredEntitlements(tenant, USERS)) {
      const key = `${tenant}/${record.user}/${record.entitlement}`;
      if (record.wanted) wanted.add(key);
      if (record.wanted && !initial.has(key)) expectedChanges.set(key, 'grant');
      if (!record.wanted && initial.has(key)) expectedChanges.set(key, 'revoke');
    }
  }
  assert.equal(actual.size, directory.length);
  assert.deepEqual([...actual].sort(), [...wanted].sort(), 'the directory matches the desired state');

  // Each needed change applied once, no other.
  const applied = await query('SELECT tenant, user_id, entitlement, action FROM entitlement_changes');
  const seen = new Map<string, string>();
  for (const row of applied) {
    const key = `${row.tenant}/${row.user_id}/${row.entitlement}`;
    assert.ok(!seen.has(key), `${row.action} of ${key} applied twice`);
    seen.set(key, String(row.action));
  }
  assert.deepEqual(new Map([...seen].sort()), new Map([...expectedChanges].sort()));

  // The tally saved with each tenant's last checkpoint counts exactly the changes in the audit table.
  const states = await query(
    `SELECT s.name, c.state FROM ${checkpointsTable} c JOIN ${shardsTable} s ON s.id = c.shard_id AND c.seq = s.checkpoint_seq WHERE s.status = 'completed'`,
  );
  assert.equal(states.length, TENANTS);
  for (const row of states) {
    const tally = JSON.parse(String(row.state)) as { granted: number; revoked: number };
    const mine = applied.filter((change) => change.tenant === row.name);
    assert.equal(tally.granted, mine.filter((change) => change.action === 'grant').length, `grants of ${row.name}`);
    assert.equal(tally.revoked, mine.filter((change) => change.action === 'revoke').length, `revokes of ${row.name}`);
  }
  return applied.length;
}

describe('reconcile-entitlements: SIGKILL mid-run, rerun until done', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  test('on SQLite', { timeout: 120_000 }, async (t) => {
    const path = join(tempDir('ckpt-reconcile-'), 'store.db');
    const query = async (sql: string) => {
      const db = new DatabaseSync(path);
      try {
        return db.prepare(sql).all() as Rows;
      } finally {
        db.close();
      }
    };
    t.diagnostic(`${await killAndRerun(`sqlite:${path}`, query, 'checkpoints', 'shards')} grants and revokes, each applied once`);
  });

  test('on PostgreSQL', { timeout: 120_000 }, async (t) => {
    const database = await freshDatabase();
    cleanups.push(database.drop);
    const query = (sql: string) => withPool(database.url, async (pool) => (await pool.query(sql)).rows);
    const url = `${database.url}?schema=ckpt`;
    t.diagnostic(`${await killAndRerun(url, query, 'ckpt.checkpoints', 'ckpt.shards')} grants and revokes, each applied once`);
  });
});
