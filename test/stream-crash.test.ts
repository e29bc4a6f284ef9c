// Stream positions committed with the writes: a real `ckpt run` child SIGKILLed at ≥ 5 random
// moments while it consumes a stream and inserts each entry into `applied` (PRIMARY KEY) through
// ctx.tx on SQLite, resumed until complete. Every entry is applied exactly once; with a Redis
// consumer group, a sampler running throughout finds no entry acknowledged before the checkpoint
// that covers it committed. Skipped with one line when the server does not answer.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, spawnCli, tempDir } from './helpers/cli.ts';
import { killUntilComplete } from './helpers/kill-loop.ts';
import { addEntries, freshJetStream, natsSkip, redisSkip, withJetStream, withRedis } from './helpers/stream-servers.ts';

const ENTRIES = 20_000;
const KILLS = 5;
const env = { CKPT_TEST_SPIN_US: '100' };

function store(dir: string): { url: string; path: string } {
  const path = join(dir, 'store.db');
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; CREATE TABLE applied (id TEXT PRIMARY KEY)');
  db.close();
  return { url: `sqlite:${path}`, path };
}

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function applied(path: string): Set<string> {
  const db = new DatabaseSync(path, { readOnly: true, timeout: 5000 });
  try {
    return new Set((db.prepare('SELECT id FROM applied').all() as { id: string }[]).map((row) => row.id));
  } finally {
    db.close();
  }
}

test(`redisStream with a consumer group: ${KILLS} SIGKILLs, every entry applied exactly once, none acknowledged before its commit`, {
  skip: await redisSkip(),
  timeout: 120_000,
}, async (t) => {
  const stream = `ckpt-crash-redis-${process.pid}`;
  const group = 'appliers';
  const ids = await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    return addEntries(client, stream, ENTRIES);
  });
  const rank = new Map(ids.map((id, index) => [id, index]));
  const dir = tempDir('ckpt-redis-crash-');
  const { url, path } = store(dir);

  // The group's state first, then the table: an entry acknowledged at the first moment must be
  // committed by the second (commits only add rows).
  const sampler = { running: true, samples: 0, ackedSeen: 0, early: [] as string[] };
  const sampling = withRedis(async (client) => {
    while (sampler.running) {
      const groups = (await client.sendCommand(['XINFO', 'GROUPS', stream]).catch(() => [])) as unknown[][];
      const info = groups
        .map((row) => Object.fromEntries(row.flatMap((value, i) => (i % 2 === 0 ? [[value, row[i + 1]]] : []))))
        .find((row) => row.name === group);
      if (info !== undefined) {
        const pending = new Set(((await client.sendCommand(['XPENDING', stream, group, '-', '+', '100000'])) as string[][]).map((row) => row[0]));
        const delivered = (rank.get(String(info['last-delivered-id'])) ?? -1) + 1;
        const done = applied(path);
        sampler.samples++;
        for (const id of ids.slice(0, delivered)) {
          if (pending.has(id)) continue;
          sampler.ackedSeen++;
          if (!done.has(id) && sampler.early.length < 5) sampler.early.push(id);
        }
      }
      await sleep(40);
    }
  });

  const sideFile = join(dir, 'done.txt');
  const args = ['run', fixture('stream-rows.ts'), '--store', url, '--param', 'kind=redis', '--param', `stream=${stream}`, '--param', `group=${group}`];
  const result = await killUntilComplete([...args, '--every', '100', '--quiet'], { ...env, CKPT_TEST_OUT: sideFile }, sideFile, KILLS);
  sampler.running = false;
  await sampling;
  assert.equal(result.final.code, 0, `the final run: ${result.final.stderr}`);

  assert.deepEqual(sampler.early, [], 'entries acknowledged before the checkpoint covering them committed');
  const rows = applied(path);
  assert.equal(rows.size, ENTRIES);
  assert.deepEqual(
    ids.filter((id) => !rows.has(id)),
    [],
    'every entry applied',
  );
  assert.ok(sampler.samples >= 10 && sampler.ackedSeen > 0, `the sampler saw the group ${sampler.samples} times`);
  const pendingAtEnd = await withRedis((client) => client.sendCommand(['XPENDING', stream, group]));
  assert.equal((pendingAtEnd as unknown[])[0], 0, 'nothing left pending once the job completed');
  t.diagnostic(
    `${result.kills} SIGKILLs (${result.midRunKills} mid-run); ${sampler.samples} samples of the group, ${sampler.ackedSeen} acknowledged entries checked`,
  );
  await withRedis((client) => client.sendCommand(['DEL', stream]));
});

test('redisStream with a consumer group and 2 workers: one SIGKILLed for good, the other takes its shard and claims its pending entries', {
  skip: await redisSkip(),
  timeout: 120_000,
}, async () => {
  const stream = `ckpt-pair-redis-${process.pid}`;
  const group = 'pair';
  const ids = await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    return addEntries(client, stream, 5000);
  });
  const dir = tempDir('ckpt-redis-pair-');
  const { url, path } = store(dir);
  const sideFile = join(dir, 'done.txt');
  const args = ['run', fixture('stream-rows.ts'), '--store', url, '--param', 'kind=redis', '--param', `stream=${stream}`, '--param', `group=${group}`];
  const workerArgs = [...args, '--every', '100', '--lease-ms', '2000', '--wait', '--quiet'];
  const first = spawnCli(workerArgs, { env: { ...env, CKPT_TEST_OUT: sideFile } });
  await until('the first worker at work', () => applied(path).size >= 300);
  const second = spawnCli(workerArgs, { env });
  await sleep(300);
  first.child.kill('SIGKILL');
  assert.equal((await first.done).signal, 'SIGKILL');
  const pendingAtKill = (await withRedis((client) => client.sendCommand(['XPENDING', stream, group]))) as unknown[];
  const result = await second.done;
  assert.equal(result.code, 0, result.stderr);
  const rows = applied(path);
  assert.deepEqual(
    ids.filter((id) => !rows.has(id)),
    [],
    'every entry applied',
  );
  assert.equal(rows.size, ids.length, 'and only once');
  assert.ok(Number(pendingAtKill[0]) > 0, 'the killed worker left entries pending');
  const pendingAtEnd = (await withRedis((client) => client.sendCommand(['XPENDING', stream, group]))) as unknown[];
  assert.equal(pendingAtEnd[0], 0, 'the second worker claimed them, applied them and acknowledged them');
  await withRedis((client) => client.sendCommand(['DEL', stream]));
});

test(`jetStream: ${KILLS} SIGKILLs, every message applied exactly once`, { skip: await natsSkip(), timeout: 120_000 }, async (t) => {
  const stream = `CKPT_CRASH_${process.pid}`;
  await freshJetStream(stream, ENTRIES);
  const dir = tempDir('ckpt-jetstream-crash-');
  const { url, path } = store(dir);
  const sideFile = join(dir, 'done.txt');
  const args = ['run', fixture('stream-rows.ts'), '--store', url, '--param', 'kind=jetstream', '--param', `stream=${stream}`];
  const result = await killUntilComplete([...args, '--every', '100', '--quiet'], { ...env, CKPT_TEST_OUT: sideFile }, sideFile, KILLS);
  assert.equal(result.final.code, 0, `the final run: ${result.final.stderr}`);
  const rows = applied(path);
  assert.equal(rows.size, ENTRIES);
  for (let seq = 1; seq <= ENTRIES; seq++) assert.ok(rows.has(String(seq)), `message ${seq} applied`);
  t.diagnostic(`${result.kills} SIGKILLs (${result.midRunKills} mid-run)`);
  await withJetStream(({ jsm }) => jsm.streams.delete(stream));
});
