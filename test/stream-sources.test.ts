// The stream sources against real servers (Redis, NATS JetStream; skipped with one line when none
// answers): positions and resume, the end of a read at the head, consumer-group claims and
// acknowledgements, and fingerprints that catch a stream dropped and created again (exit 4).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { ExitCode } from '../src/errors.ts';
import { jetStream, redisStream } from '../src/index.ts';
import { fixture, runCli, tempDir } from './helpers/cli.ts';
import { addEntries, freshJetStream, natsSkip, natsUrl, publish, redisSkip, redisUrl, withJetStream, withRedis } from './helpers/stream-servers.ts';

const redisDown = await redisSkip();
const natsDown = await natsSkip();
const signal = new AbortController().signal;

async function readAll<R, P>(source: { read(after: P | undefined, opts: { signal: AbortSignal }): AsyncIterable<{ position: P; record: R }> }, after?: P) {
  const items: { position: P; record: R }[] = [];
  for await (const item of source.read(after, { signal })) items.push(item);
  return items;
}

function storeWithApplied(dir: string): string {
  const path = join(dir, 'store.db');
  const db = new DatabaseSync(path);
  db.exec('CREATE TABLE applied (id TEXT PRIMARY KEY)');
  db.close();
  return `sqlite:${path}`;
}

test('redisStream: reads after the checkpoint ID in numeric ID order and ends at the head as of its start', { skip: redisDown }, async () => {
  const stream = `ckpt-test-order-${process.pid}`;
  await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    // 9-x before 10-x: string order would put 10-0 first.
    for (const id of ['9-0', '9-1', '10-0', '10-2', '10-10', '100-0']) await client.sendCommand(['XADD', stream, id, 'id', id]);
  });
  const source = redisStream({ url: redisUrl, stream, count: 2 });
  assert.deepEqual(
    (await readAll(source)).map((item) => item.position),
    ['9-0', '9-1', '10-0', '10-2', '10-10', '100-0'],
  );
  assert.deepEqual(
    (await readAll(source, '10-0')).map((item) => item.record.fields.id),
    ['10-2', '10-10', '100-0'],
  );
  // An entry added while a read runs is left for the next read.
  const oneByOne = redisStream({ url: redisUrl, stream, count: 1 });
  const iterator = oneByOne.read('10-2', { signal })[Symbol.asyncIterator]();
  const first = await iterator.next();
  await withRedis((client) => client.sendCommand(['XADD', stream, '200-0', 'id', '200-0']));
  const rest: string[] = [];
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) rest.push(next.value.position);
  assert.deepEqual([first.value?.position, ...rest], ['10-10', '100-0']);
  await withRedis((client) => client.sendCommand(['DEL', stream]));
});

test('redisStream with a group: a dead consumer’s pending entries are claimed, and entries are XACKed only once committed() covers them', {
  skip: redisDown,
}, async () => {
  const stream = `ckpt-test-group-${process.pid}`;
  const group = 'workers';
  const ids = await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    const ids = await addEntries(client, stream, 8);
    await client.sendCommand(['XGROUP', 'CREATE', stream, group, '0']);
    // A worker that died after delivering itself five entries, the first two of them checkpointed.
    await client.sendCommand(['XREADGROUP', 'GROUP', group, 'dead', 'COUNT', '5', 'STREAMS', stream, '>']);
    return ids;
  });
  const pending = () =>
    withRedis(async (client) => ((await client.sendCommand(['XPENDING', stream, group, '-', '+', '100'])) as string[][]).map((row) => row[0]));
  const source = redisStream({ url: redisUrl, stream, group, consumer: 'next', count: 2 });
  const items = await readAll(source, ids[1]);
  assert.deepEqual(
    items.map((item) => item.position),
    ids.slice(2),
    'the dead worker’s unfinished entries, then the undelivered ones',
  );
  assert.deepEqual(await pending(), ids.slice(2), 'the two checkpointed entries are acknowledged; the rest wait for their checkpoint');
  await source.committed?.(ids[4] as string);
  assert.deepEqual(await pending(), ids.slice(5), 'a commit acknowledges up to its position, no further');
  await source.committed?.(ids[7] as string);
  assert.deepEqual(await pending(), []);
  await withRedis((client) => client.sendCommand(['DEL', stream]));
});

test('redisStream with a group: entries a worker that lost its lease delivered itself mid-read are claimed and read, not skipped', {
  skip: redisDown,
}, async () => {
  const stream = `ckpt-test-zombie-${process.pid}`;
  const group = 'workers';
  const ids = await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    const ids = await addEntries(client, stream, 8);
    await client.sendCommand(['XGROUP', 'CREATE', stream, group, '0']);
    return ids;
  });
  const source = redisStream({ url: redisUrl, stream, group, consumer: 'holder', count: 2 });
  const iterator = source.read(undefined, { signal })[Symbol.asyncIterator]();
  const seen = [(await iterator.next()).value?.position, (await iterator.next()).value?.position];
  // The old holder, not yet aware it was fenced, takes the next two entries for itself.
  await withRedis((client) => client.sendCommand(['XREADGROUP', 'GROUP', group, 'zombie', 'COUNT', '2', 'STREAMS', stream, '>']));
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) seen.push(next.value.position);
  assert.deepEqual(seen, ids);
  const owners = await withRedis(async (client) =>
    ((await client.sendCommand(['XPENDING', stream, group, '-', '+', '100'])) as string[][]).map((row) => row[1]),
  );
  assert.deepEqual(new Set(owners), new Set(['holder']), 'the zombie’s entries are now pending with the holder, acknowledged with its commits');
  await withRedis((client) => client.sendCommand(['DEL', stream]));
});

test('redisStream fingerprint: kept through trimming; a stream dropped and created again is drift (ckpt run exits 4)', { skip: redisDown }, async () => {
  const stream = `ckpt-test-drift-${process.pid}`;
  await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    await addEntries(client, stream, 100);
  });
  const source = redisStream({ url: redisUrl, stream });
  const before = await source.fingerprint?.();
  await withRedis((client) => client.sendCommand(['XTRIM', stream, 'MAXLEN', '10']));
  assert.equal(await source.fingerprint?.(), before, 'trimming is not a new stream');

  const dir = tempDir('ckpt-redis-drift-');
  const args = [
    'run',
    fixture('stream-rows.ts'),
    '--store',
    storeWithApplied(dir),
    '--param',
    'kind=redis',
    '--param',
    `stream=${stream}`,
    '--every',
    '2',
    '--quiet',
  ];
  const failed = await runCli(args, { env: { STREAM_ROWS_FAIL_AFTER: '5' } });
  assert.equal(failed.code, ExitCode.failed, failed.stderr);
  await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    await addEntries(client, stream, 10);
  });
  const resumed = await runCli(args);
  assert.equal(resumed.code, ExitCode.refused, resumed.stderr);
  assert.match(resumed.stderr, /source changed: fingerprint redis:/);
  await withRedis((client) => client.sendCommand(['DEL', stream]));
});

test('jetStream: reads from the checkpoint’s sequence + 1, on one subject, and ends at the head as of its start', { skip: natsDown }, async () => {
  const stream = `CKPT_ORDER_${process.pid}`;
  await freshJetStream(stream, 10);
  const all = jetStream({ servers: natsUrl, stream });
  assert.deepEqual(
    (await readAll(all)).map((item) => item.position),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  const onB = jetStream({ servers: natsUrl, stream, subject: `${stream}.b`, decode: (data) => JSON.parse(new TextDecoder().decode(data)) as { i: number } });
  const items = await readAll(onB, 4);
  assert.deepEqual(
    items.map((item) => [item.position, item.record.subject, item.record.data.i]),
    [
      [6, `${stream}.b`, 5],
      [8, `${stream}.b`, 7],
      [10, `${stream}.b`, 9],
    ],
  );
  assert.deepEqual(await readAll(all, 10), [], 'nothing after the head');
  // Messages published during a read are left for the next one.
  const iterator = all.read(8, { signal })[Symbol.asyncIterator]();
  const first = await iterator.next();
  await withJetStream(({ js }) => publish(js, stream, 3, 10));
  const rest: number[] = [];
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) rest.push(next.value.position);
  assert.deepEqual([first.value?.position, ...rest], [9, 10]);
  await withJetStream(({ jsm }) => jsm.streams.delete(stream));
});

test('jetStream fingerprint: a stream deleted and added again is drift (ckpt run exits 4)', { skip: natsDown }, async () => {
  const stream = `CKPT_DRIFT_${process.pid}`;
  await freshJetStream(stream, 20);
  const dir = tempDir('ckpt-jetstream-drift-');
  const args = [
    'run',
    fixture('stream-rows.ts'),
    '--store',
    storeWithApplied(dir),
    '--param',
    'kind=jetstream',
    '--param',
    `stream=${stream}`,
    '--every',
    '2',
    '--quiet',
  ];
  const failed = await runCli(args, { env: { STREAM_ROWS_FAIL_AFTER: '5' } });
  assert.equal(failed.code, ExitCode.failed, failed.stderr);
  await freshJetStream(stream, 20);
  const resumed = await runCli(args);
  assert.equal(resumed.code, ExitCode.refused, resumed.stderr);
  assert.match(resumed.stderr, /source changed: fingerprint jetstream:/);
  await withJetStream(({ jsm }) => jsm.streams.delete(stream));
});

test('incremental runs over streams: each generation starts at the last one’s end and reads only what was added', { skip: redisDown || natsDown }, async () => {
  const stream = `ckpt-test-incremental-${process.pid}`;
  const subjectStream = `CKPT_INCREMENTAL_${process.pid}`;
  await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    await addEntries(client, stream, 30);
  });
  await freshJetStream(subjectStream, 30);
  const env = { STREAM_ROWS_INCREMENTAL: '1' };
  const dir = tempDir('ckpt-stream-incremental-');
  const store = storeWithApplied(dir);
  const run = async (kind: string, name: string, extra: string[] = []) => {
    const result = await runCli(
      ['run', fixture('stream-rows.ts'), '--store', store, '--param', `kind=${kind}`, '--param', `stream=${name}`, ...extra, '--json'],
      { env },
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout.split('\n').find((line) => line.includes('"type":"summary"')) as string);
    return [summary.generation, summary.records];
  };
  const redisArgs = ['--param', 'group=incremental'];
  assert.deepEqual(await run('redis', stream, redisArgs), [1, 30]);
  assert.deepEqual(await run('jetstream', subjectStream), [1, 30]);
  await withRedis((client) => addEntries(client, stream, 7, 30));
  await withJetStream(({ js }) => publish(js, subjectStream, 7, 30));
  assert.deepEqual(await run('redis', stream, redisArgs), [2, 7]);
  assert.deepEqual(await run('jetstream', subjectStream), [2, 7]);
  assert.deepEqual(await run('redis', stream, redisArgs), [3, 0], 'nothing new');
  const pending = await withRedis((client) => client.sendCommand(['XPENDING', stream, 'incremental']));
  assert.equal((pending as unknown[])[0], 0, 'every entry acknowledged');
  await withRedis((client) => client.sendCommand(['DEL', stream]));
  await withJetStream(({ jsm }) => jsm.streams.delete(subjectStream));
});

test('jetStream: a missing stream is one line and exit 2', { skip: natsDown }, async () => {
  const dir = tempDir('ckpt-jetstream-missing-');
  const result = await runCli([
    'run',
    fixture('stream-rows.ts'),
    '--store',
    storeWithApplied(dir),
    '--param',
    'kind=jetstream',
    '--param',
    'stream=CKPT_NO_SUCH_STREAM',
  ]);
  assert.equal(result.code, ExitCode.usage, result.stderr);
  assert.match(result.stderr, /^ckpt: .*there is no stream CKPT_NO_SUCH_STREAM\n$/);
});

test('jetStream: a stream name no stream can have (a dot, a space) is one line and exit 2, not a failed run', { skip: natsDown }, async () => {
  for (const name of ['orders.eu', 'two words']) {
    const dir = tempDir('ckpt-jetstream-bad-name-');
    const result = await runCli(['run', fixture('stream-rows.ts'), '--store', storeWithApplied(dir), '--param', 'kind=jetstream', '--param', `stream=${name}`]);
    assert.equal(result.code, ExitCode.usage, result.stderr);
    assert.match(result.stderr, /^ckpt: jetStream: stream name \('.*'\) cannot contain '.'; give the name of a stream on the server \(nats stream ls\)\n$/);
  }
});

test('redisStream: a key that holds no stream (a string) is one line and exit 2, not a failed run, with a group or without', { skip: redisDown }, async () => {
  const key = `ckpt-test-not-a-stream-${process.pid}`;
  await withRedis(async (client) => void (await client.sendCommand(['SET', key, 'x'])));
  try {
    for (const group of [[], ['--param', 'group=g']]) {
      const dir = tempDir('ckpt-redis-wrongtype-');
      const result = await runCli([
        'run',
        fixture('stream-rows.ts'),
        '--store',
        storeWithApplied(dir),
        '--param',
        'kind=redis',
        '--param',
        `stream=${key}`,
        ...group,
      ]);
      assert.equal(result.code, ExitCode.usage, result.stderr);
      assert.match(
        result.stderr,
        /^ckpt: redisStream: the key "ckpt-test-not-a-stream-\d+" holds something other than a stream; give the key of a stream \(TYPE says stream\)\n$/,
      );
    }
  } finally {
    await withRedis(async (client) => void (await client.sendCommand(['DEL', key])));
  }
});

test('redisStream: an entry field named __proto__ (or constructor) is a field like any other, not lost', { skip: redisDown }, async () => {
  const stream = `ckpt-test-proto-${process.pid}`;
  await withRedis(async (client) => {
    await client.sendCommand(['DEL', stream]);
    await client.sendCommand(['XADD', stream, '1-0', 'id', '7', '__proto__', 'p', 'constructor', 'c']);
  });
  for (const group of [undefined, 'g']) {
    const [item] = await readAll(redisStream({ url: redisUrl, stream, ...(group === undefined ? {} : { group }) }));
    assert.equal(JSON.stringify(item?.record.fields), '{"id":"7","__proto__":"p","constructor":"c"}', `group ${group}`);
    assert.equal(Object.getPrototypeOf(item?.record.fields), Object.prototype);
  }
  await withRedis((client) => client.sendCommand(['DEL', stream]));
});

test('jetStream: a message its decode throws on is a failing record (dead-lettered under skip), and the stream goes on past it', {
  skip: natsDown,
}, async () => {
  const stream = `CKPT_POISON_${process.pid}`;
  await withJetStream(async ({ js, jsm }) => {
    await jsm.streams.delete(stream).catch(() => undefined);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    for (const body of ['{"i":1}', '{"i":2', '{"i":3}']) await js.publish(`${stream}.x`, body);
  });
  const items = await readAll(jetStream({ servers: natsUrl, stream, decode: (data) => JSON.parse(new TextDecoder().decode(data)) as { i: number } }));
  assert.deepEqual(
    items.map((item) => [item.position, item.record.data, /could not be decoded: \w+/.test((item as { error?: Error }).error?.message ?? '')]),
    [
      [1, { i: 1 }, false],
      [2, '{"i":2', true],
      [3, { i: 3 }, false],
    ],
  );
  assert.match((items[1] as { error?: Error }).error?.message ?? '', new RegExp(`^jetStream: message 2 of ${stream} could not be decoded: `));
  await withJetStream(({ jsm }) => jsm.streams.delete(stream));
});
