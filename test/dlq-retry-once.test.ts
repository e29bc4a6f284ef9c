// Adversarial: two `ckpt dlq <job-file> --retry` at the same moment. Each dead letter's retry
// commits its ctx.tx writes with the letter's removal, so a letter the other process already
// resolved must not commit its writes a second time (guarantee 3: ctx.tx exactly once); the
// store refuses that commit (`alreadyResolved`) should two retries ever reach one letter, and
// the letter's shard lease keeps them from it in the first place.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, isOneLineError, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { sqlStores } from './helpers/sql-stores.ts';

test('two dlq --retry together: each dead letter is retried into ctx.tx once, not twice', { timeout: 60_000 }, async () => {
  const dir = tempDir('ckpt-dlq-');
  const path = join(dir, 's.db');
  const job = fixture('dlq-tx.ts');
  const first = await runCli(['run', job, '--store', `sqlite:${path}`, '--quiet'], { env: { POISON: '3,7' } });
  assert.equal(first.code, 0, first.stderr);

  const env = { FIXED: '1', SLOW_MS: '1500' };
  const retries = [0, 1].map(() => spawnCli(['dlq', job, '--retry', '--store', `sqlite:${path}`], { env }));
  const results = await Promise.all(retries.map((retry) => retry.done));
  // The second leaves the letters to the first, whose lease holds their shard (see below).
  assert.deepEqual(results.map((result) => result.code).sort(), [0, 4], results.map((result) => result.stderr).join('\n'));

  const db = new DatabaseSync(path);
  const rows = db.prepare('SELECT n, count(*) AS c FROM out GROUP BY n ORDER BY n').all() as { n: number; c: number }[];
  const letters = db.prepare('SELECT count(*) AS c FROM dead_letters').get() as { c: number };
  db.close();
  assert.deepEqual(
    rows.map((row) => [row.n, row.c]),
    [...Array(10).keys()].map((n) => [n, 1]),
    'every record written exactly once',
  );
  assert.equal(letters.c, 0);
});

// Two `ckpt dlq --retry` at once, each dead letter revoking a key: the retry that came second
// found the first's intent in flight, took it for one a crash left in doubt, asked verify (the
// slow call not done yet: false) and revoked again. Now a retry leases the letter's shard first,
// so the second leaves the letters to the first (exit 4, one line saying so), and each revoke is
// called once; run again afterwards, it finds nothing left.
for (const store of sqlStores) {
  test(`${store.title}: two dlq --retry together call each dead letter's effect once`, { skip: await store.skip(), timeout: 90_000 }, async () => {
    const database = await store.database();
    try {
      const url = database.store();
      const dir = tempDir('ckpt-dlq-effect-');
      const apiLog = join(dir, 'api.log');
      const job = fixture('dlq-effect.ts');
      const first = await runCli(['run', job, '--store', url, '--quiet'], { env: { POISON: '1,4', API_LOG: apiLog } });
      assert.equal(first.code, 0, first.stderr);

      const env = { FIXED: '1', SLOW_MS: '1500', API_LOG: apiLog };
      const retries = [0, 1].map(() => spawnCli(['dlq', job, '--retry', '--store', url], { env }));
      const results = await Promise.all(retries.map((retry) => retry.done));
      const calls = readFileSync(apiLog, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('call '))
        .sort();
      assert.deepEqual(calls, ['call 0', 'call 1', 'call 2', 'call 3', 'call 4', 'call 5'], 'each revoke called once');
      const codes = results.map((result) => result.code).sort();
      assert.deepEqual(codes, [0, 4], results.map((result) => result.stdout + result.stderr).join('\n---\n'));
      const refused = results.find((result) => result.code === 4);
      assert.ok(refused !== undefined && isOneLineError(refused.stderr), refused?.stderr);
      assert.match(refused?.stderr ?? '', /were not retried: their shard is held .*run the same command again once it ends/);

      const again = await runCli(['dlq', job, '--retry', '--store', url], { env });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /retried 0 dead letters/);
      const audit = await runCli(['audit', 'dlq-effect', '--store', url, '--verify']);
      assert.equal(audit.code, 0, audit.stdout + audit.stderr);
    } finally {
      await database.drop();
    }
  });
}

// A retry paused past its lease while a second one took the letters' shard: woken while the
// second's revoke of the next letter is in flight, it finds that revoke's intent, which looks
// in doubt, and verify says not yet; its own intent is refused (its token is stale), so it never
// calls, and the second's call is the only one. Its late completion of the letter it paused in
// is recorded as such, and the chain verifies.
test('a dlq --retry paused past its lease is fenced: the retry that took over is the only one to call', { timeout: 90_000 }, async () => {
  const dir = tempDir('ckpt-dlq-paused-');
  const url = `sqlite:${join(dir, 's.db')}`;
  const apiLog = join(dir, 'api.log');
  const job = fixture('dlq-effect.ts');
  const first = await runCli(['run', job, '--store', url, '--quiet'], { env: { POISON: '1,4', API_LOG: apiLog } });
  assert.equal(first.code, 0, first.stderr);
  const lines = () => readFileSync(apiLog, 'utf8').split('\n');
  const until = async (what: () => boolean, label: string) => {
    for (const started = Date.now(); !what(); await sleep(20)) if (Date.now() - started > 30_000) assert.fail(`waited 30 s for ${label}`);
  };

  const paused = spawnCli(['dlq', job, '--retry', '--store', url, '--lease-ms', '500'], { env: { FIXED: '1', API_LOG: apiLog, PAUSE_AFTER: '1' } });
  await until(() => lines().includes('done 1'), 'the first retry to revoke 1');
  await sleep(1000);
  const taker = spawnCli(['dlq', job, '--retry', '--store', url], { env: { FIXED: '1', SLOW_MS: '3000', API_LOG: apiLog } });
  await until(() => lines().includes('call 4'), 'the second retry to call revoke 4');
  paused.child.kill('SIGCONT');
  const [woken, took] = await Promise.all([paused.done, taker.done]);
  assert.equal(took.code, 0, took.stdout + took.stderr);
  const said = `the woken retry said: ${woken.stdout}${woken.stderr}`;
  for (const n of [1, 4]) assert.equal(lines().filter((line) => line === `call ${n}`).length, 1, `revoke ${n} called once; ${said}`);
  // Woken, it either learnt first from its heartbeat that it lost the lease (the letter is left to
  // the other, exit 4) or met the other's revoke in flight and was refused its intent (exit 1).
  assert.ok(
    (woken.code === 4 && /not retried: their shard is held .*this retry's lease lapsed/.test(woken.stderr)) ||
      (woken.code === 1 && /revoke-4 not started: shard main was taken by another worker/.test(woken.stdout)),
    said,
  );
  const events = await runCli(['events', 'dlq-effect', '--store', url, '--json']);
  assert.match(events.stdout, /effect:late-completion/);
  const audit = await runCli(['audit', 'dlq-effect', '--store', url, '--verify']);
  assert.equal(audit.code, 0, audit.stdout + audit.stderr);
});

test('dlq --lease-ms: under 100 ms, or without --retry, is one line and exit 2', async () => {
  const url = `sqlite:${join(tempDir('ckpt-dlq-lease-'), 's.db')}`;
  const job = fixture('dlq-effect.ts');
  assert.equal((await runCli(['run', job, '--store', url, '--quiet'])).code, 0);
  for (const args of [
    ['--retry', '--lease-ms', '50'],
    ['--lease-ms', '5000'],
  ]) {
    const result = await runCli(['dlq', job, '--store', url, ...args]);
    assert.equal(result.code, 2, result.stderr);
    assert.ok(isOneLineError(result.stderr), result.stderr);
  }
});
