// Follow mode (`ckpt run --follow`): a real child follows a Redis stream (consumer group) and a
// JetStream stream at their heads. Entries added while it runs are applied; while the stream is
// quiet the heartbeat checkpoints (and the Redis entries are then acknowledged); SIGTERM drains,
// checkpoints and exits 3; a second follower goes on from there, each entry applied exactly once.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode } from '../src/errors.ts';
import { fixture, lagReader, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { addEntries, freshJetStream, natsSkip, publish, redisSkip, withJetStream, withRedis } from './helpers/stream-servers.ts';

function appliedCount(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true, timeout: 5000 });
  try {
    return (db.prepare('SELECT count(*) AS n FROM applied').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Everything the child printed so far. */
function output(spawned: ReturnType<typeof spawnCli>): string {
  return (spawned as { seen?: string }).seen ?? '';
}

function watched(spawned: ReturnType<typeof spawnCli>): ReturnType<typeof spawnCli> {
  spawned.child.stdout?.on('data', (chunk: string) => {
    (spawned as { seen?: string }).seen = output(spawned) + chunk;
  });
  return spawned;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const streams = [
  {
    kind: 'redis',
    skip: await redisSkip(),
    name: `ckpt-follow-${process.pid}`,
    params: ['--param', 'group=followers'],
    async fresh(name: string, count: number) {
      await withRedis(async (client) => {
        await client.sendCommand(['DEL', name]);
        await addEntries(client, name, count);
      });
    },
    add: (name: string, count: number, from: number) => withRedis((client) => addEntries(client, name, count, from)).then(() => undefined),
    /** Entries delivered and not yet acknowledged. */
    pending: async (name: string) => Number(((await withRedis((client) => client.sendCommand(['XPENDING', name, 'followers']))) as unknown[])[0]),
    drop: (name: string) => withRedis((client) => client.sendCommand(['DEL', name])).then(() => undefined),
  },
  {
    kind: 'jetstream',
    skip: await natsSkip(),
    name: `CKPT_FOLLOW_${process.pid}`,
    params: [],
    fresh: (name: string, count: number) => freshJetStream(name, count),
    add: (name: string, count: number, from: number) => withJetStream(({ js }) => publish(js, name, count, from)),
    pending: async () => 0,
    drop: (name: string) => withJetStream(({ jsm }) => jsm.streams.delete(name)).then(() => undefined),
  },
];

// The three at once: each has its own stream (named apart) and store, and each is mostly waiting
// for a follower at the head.
describe('each stream', { concurrency: 3 }, () => {
  for (const stream of streams) {
    test(`--follow on ${stream.kind}: waits at the head, checkpoints while quiet, SIGTERM exits 3, the next follower goes on`, {
      skip: stream.skip,
      timeout: 90_000,
    }, async () => {
      await stream.fresh(stream.name, 20);
      const dir = tempDir('ckpt-follow-');
      const store = join(dir, 'store.db');
      const db = new DatabaseSync(store);
      db.exec('CREATE TABLE applied (id TEXT PRIMARY KEY)');
      db.close();
      const args = ['run', fixture('stream-rows.ts'), '--store', `sqlite:${store}`, '--param', `kind=${stream.kind}`, '--param', `stream=${stream.name}`];
      const follow = [...args, ...stream.params, '--follow', '--every-ms', '300', '--json'];

      const first = watched(spawnCli(follow));
      await until('the first 20 entries', () => appliedCount(store) === 20);
      // Quiet now: the heartbeat commits what was done, and only then are the entries acknowledged.
      await until('a checkpoint while quiet', () => /"type":"checkpoint".*"processed":20,/.test(output(first)));
      assert.equal(await stream.pending(stream.name), 0, 'committed, then acknowledged');
      await stream.add(stream.name, 15, 20);
      await until('the 15 entries added while it follows', () => appliedCount(store) === 35);
      await sleep(500);
      first.child.kill('SIGTERM');
      const ended = await first.done;
      assert.equal(ended.code, ExitCode.interrupted, ended.stderr);
      assert.match(ended.stdout, /"type":"checkpoint".*"processed":35/, 'a checkpoint covers all 35');
      assert.doesNotMatch(ended.stdout, /"type":"shard:complete"/, 'a follower never completes');
      assert.equal(await stream.pending(stream.name), 0, 'everything done is acknowledged');

      const second = spawnCli(follow);
      await stream.add(stream.name, 5, 35);
      await until('the 5 entries for the second follower', () => appliedCount(store) === 40);
      await sleep(500);
      second.child.kill('SIGTERM');
      const again = await second.done;
      assert.equal(again.code, ExitCode.interrupted, again.stderr);
      assert.match(again.stdout, /"type":"run:resume".*"processed":35/, 'the second follower resumed at 35');
      assert.equal(appliedCount(store), 40, 'each entry applied exactly once');
      await stream.drop(stream.name);
    });
  }

  test('ckpt status --json shows a follower’s lag: entries behind the head while it works through them, 0 once caught up', {
    skip: streams[0]?.skip,
    timeout: 90_000,
  }, async () => {
    const name = `ckpt-lag-${process.pid}`;
    await withRedis((client) => client.sendCommand(['DEL', name]));
    const dir = tempDir('ckpt-lag-');
    const store = join(dir, 'store.db');
    const db = new DatabaseSync(store);
    db.exec('CREATE TABLE applied (id TEXT PRIMARY KEY)');
    db.close();
    const args = ['run', fixture('stream-rows.ts'), '--store', `sqlite:${store}`, '--param', 'kind=redis', '--param', `stream=${name}`, '--follow', '--quiet'];
    // 20 ms per entry: 200 entries take 4 s, long enough to be seen behind.
    const follower = spawnCli(args, { env: { CKPT_TEST_SPIN_US: '20000' } });
    await until('the follower at work', async () => /"holders": \[\s*\{/.test((await runCli(['status', '--json', '--store', `sqlite:${store}`])).stdout));
    await withRedis((client) => addEntries(client, name, 200));
    const { lags, now: lagNow } = lagReader(store);
    await until('a lag above 0', async () => ((await lagNow()) ?? 0) > 0);
    await until('all 200 applied', () => appliedCount(store) === 200);
    await until('the lag back at 0', async () => (await lagNow()) === 0);
    follower.child.kill('SIGTERM');
    assert.equal((await follower.done).code, ExitCode.interrupted);
    assert.ok(Math.max(...lags) > 0 && lags.at(-1) === 0, `lags seen: ${lags.join(', ')}`);
    await withRedis((client) => client.sendCommand(['DEL', name]));
  });
});
