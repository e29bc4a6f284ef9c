// ctx.once called inside another ctx.once's fn. Two workers whose shards share keys and nest them
// in the opposite order (east `a` then `b` inside it, west `b` then `a`) each held one intent and
// waited for the other's while both leases lived: they waited for each other forever (both printed
// `effect:waiting`, neither ended). A key nested in itself waited for itself even on one worker.
// Effects do not nest: the inner call fails its record at once with one line saying so, and the
// job fails (exit 1) instead of hanging; on SQLite and PostgreSQL, two real processes.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { sqlStores } from './helpers/sql-stores.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const NESTED = /ctx\.once\("call:[ab]"\) called inside the fn of ctx\.once\("call:[ab]"\): effects do not nest/;

for (const backend of sqlStores.filter((store) => store.name !== 'mysql')) {
  describe(`nested ctx.once: ${backend.title}`, { skip: await backend.skip(), concurrency: true }, () => {
    test('two workers nesting shared keys in opposite orders fail at once with one line (exit 1), no deadlock', async () => {
      const dir = tempDir('ckpt-nested-');
      const database = await backend.database();
      cleanups.push(() => database.drop());
      const args = ['run', fixture('nested-keys.ts'), '--store', database.store(), '--lease-ms', '5000', '--wait'];
      const workers = [spawnCli(args, { env: { NESTED_DIR: dir } }), spawnCli(args, { env: { NESTED_DIR: dir } })];
      // Before, both waited for each other for as long as their leases lived: killed here.
      const timer = setTimeout(() => {
        for (const worker of workers) worker.child.kill('SIGKILL');
      }, 40_000);
      const results = await Promise.all(workers.map((worker) => worker.done));
      clearTimeout(timer);
      for (const result of results) {
        assert.equal(result.signal, null, `a worker hung (deadlock): ${result.stdout.slice(-400)}`);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, NESTED);
      }
      // No inner fn ran: the call was refused before it claimed its key.
      assert.equal(existsSync(join(dir, 'api.log')) ? readFileSync(join(dir, 'api.log'), 'utf8') : '', '');
    });
  });
}

test('a key nested inside itself fails at once with the same line (exit 1), not wait for itself', async () => {
  const dir = tempDir('ckpt-nested-same-');
  const run = spawnCli(['run', fixture('nested-keys.ts'), '--store', `sqlite:${join(dir, 's.db')}`], {
    env: { NESTED_DIR: dir, NESTED_SAME: '1', NESTED_ALONE: '1' },
  });
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
  const result = await run.done;
  clearTimeout(timer);
  assert.equal(result.signal, null, 'the run waited for itself');
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /ctx\.once\("call:(a|b)"\) called inside the fn of ctx\.once\("call:\1"\): effects do not nest/);
  const audit = await runCli(['audit', 'nested-keys', '--verify', '--store', `sqlite:${join(dir, 's.db')}`]);
  assert.equal(audit.code, 0, audit.stdout + audit.stderr);
});
