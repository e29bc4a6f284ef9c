// Guarantee 4 across shards: one effect key used by two shards that run at the same time on two
// workers (a user listed under two tenants) runs its effect once. The second worker to reach the
// key finds the first's intent still in flight and waits for it (its writer holds its lease),
// instead of taking it for one left in doubt by a crash and asking `verify` or running `fn`
// again. A worker SIGKILLed mid-run leaves intents that are then truly in doubt: its process is
// gone, so they are settled by `verify` at once, never run blindly, and never twice.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { sqlStores } from './helpers/sql-stores.ts';

const KEYS = 60;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/** Keys called more than once at the fake directory, with their counts. */
function doubled(dir: string): string[] {
  const counts = new Map<string, number>();
  for (const line of lines(join(dir, 'api.log'))) counts.set(line, (counts.get(line) ?? 0) + 1);
  return [...counts].filter(([, count]) => count > 1).map(([line, count]) => `${line} ×${count}`);
}

for (const backend of sqlStores) {
  describe(`a key shared by two live shards: ${backend.title}`, { skip: await backend.skip(), concurrency: true }, () => {
    test('two workers, one shard each, the same keys at the same time: each effect runs once, both shards get its result', async () => {
      const dir = tempDir('ckpt-shared-');
      const database = await backend.database();
      cleanups.push(() => database.drop());
      const args = ['run', fixture('shared-keys.ts'), '--store', database.store(), '--lease-ms', '5000', '--wait'];
      const env = { SHARED_DIR: dir, SHARED_KEYS: String(KEYS) };
      const workers = [spawnCli(args, { env }), spawnCli(args, { env })];
      const results = await Promise.all(workers.map((worker) => worker.done));
      for (const result of results) assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(doubled(dir), [], 'no key called twice');
      assert.equal(lines(join(dir, 'api.log')).length, KEYS, 'every key called');
      for (const shard of ['east', 'west']) {
        const got = lines(join(dir, `app-${shard}.log`));
        assert.equal(got.length, KEYS, `${shard} finished every record`);
      }
      // Both shards got the one result of each key (whichever shard ran it).
      const east = new Map(lines(join(dir, 'app-east.log')).map((line) => line.split(' ') as [string, string]));
      for (const line of lines(join(dir, 'app-west.log'))) {
        const [key, by] = line.split(' ') as [string, string];
        assert.equal(east.get(key), by, `${key}: both shards got the same result`);
      }
      const audit = await runCli(['audit', 'shared-keys', '--verify', '--store', database.store()]);
      assert.equal(audit.code, 0, audit.stdout + audit.stderr);
    });

    test('a worker SIGKILLed while the other waits on its keys: its intents are settled by verify, none run twice', async () => {
      const dir = tempDir('ckpt-shared-kill-');
      const database = await backend.database();
      cleanups.push(() => database.drop());
      const args = ['run', fixture('shared-keys.ts'), '--store', database.store(), '--lease-ms', '5000', '--wait'];
      const env = { SHARED_DIR: dir, SHARED_KEYS: String(KEYS) };
      const victim = spawnCli(args, { env });
      const other = spawnCli(args, { env });
      const deadline = Date.now() + 30_000;
      while (lines(join(dir, 'api.log')).length < KEYS / 3 && Date.now() < deadline) await sleep(5);
      victim.child.kill('SIGKILL');
      const survivor = await other.done;
      assert.equal(survivor.code, 0, survivor.stderr);
      // The killed worker's shard, finished by a new worker.
      const resumed = await runCli(args, { env });
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.deepEqual(doubled(dir), [], 'no key called twice');
      assert.equal(lines(join(dir, 'api.log')).length, KEYS, 'every key called');
      const audit = await runCli(['audit', 'shared-keys', '--verify', '--store', database.store()]);
      assert.equal(audit.code, 0, audit.stdout + audit.stderr);
    });
  });
}
