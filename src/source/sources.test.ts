import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fromArray } from './array.ts';
import { csvFile } from './csv.ts';
import { openCursor } from './cursor.ts';
import { ndjsonFile } from './ndjson.ts';
import { range } from './range.ts';
import type { Source } from './source.ts';

async function collect<R, P>(source: Source<R, P>, after?: P) {
  const items = [];
  for await (const item of source.read(after, { signal: new AbortController().signal })) items.push(item);
  return items;
}

/** The same walk through the source's cursor, as the runner does it: `next` while records are at hand, else `more`. */
async function walk<R, P>(source: Source<R, P>, after?: P) {
  const cursor = openCursor(source, after, { signal: new AbortController().signal });
  const items: { position: P; record: R; error?: Error | undefined }[] = [];
  let mores = 0;
  for (;;) {
    if (cursor.next()) items.push({ position: cursor.position, record: cursor.record, ...(cursor.error ? { error: cursor.error } : {}) });
    else if (!(await cursor.more())) break;
    else mores++;
  }
  await cursor.close();
  return { items, mores };
}

test('paged sources: the cursor walks the records `read` yields, a page per `more`, pages that end mid-record included', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-paged-'));
  const ndjson = join(dir, 'in.ndjson');
  writeFileSync(ndjson, Array.from({ length: 50 }, (_, n) => JSON.stringify({ n, pad: 'x'.repeat(n % 7) })).join('\n'));
  const csv = join(dir, 'in.csv');
  writeFileSync(csv, `a,b\n${Array.from({ length: 50 }, (_, n) => (n === 20 ? '"multi\nline",20' : `v${n},${n}`)).join('\n')}\nbroken,1,2\n`);
  for (const [name, source] of [
    ['ndjson', ndjsonFile(ndjson, { chunkBytes: 64 })],
    ['csv', csvFile(csv, { chunkBytes: 64 })],
  ] as const) {
    const read = await collect(source as Source<unknown, number>);
    const walked = await walk(source as Source<unknown, number>);
    assert.deepEqual(
      walked.items.map((item) => [item.position, item.record, item.error?.message]),
      read.map((item) => [item.position, item.record, item.error?.message]),
      name,
    );
    // Fewer awaits than records: a page's records come without one each.
    assert.ok(walked.mores < read.length, `${name}: ${walked.mores} awaits for ${read.length} records`);
    const middle = read[17]?.position as number;
    assert.deepEqual(
      (await walk(source as Source<unknown, number>, middle)).items.map((item) => item.position),
      read.slice(18).map((item) => item.position),
      `${name} resumed`,
    );
  }
});

test('range and fromArray read strictly after a position', async () => {
  assert.deepEqual(
    (await collect(range(0, 5), 2)).map((item) => item.record),
    [3, 4],
  );
  assert.deepEqual(
    (await collect(fromArray(['a', 'b', 'c']), 0)).map((item) => [item.position, item.record]),
    [
      [1, 'b'],
      [2, 'c'],
    ],
  );
  assert.equal(await range(10, 20).size?.(), 10);
});

test('ndjsonFile: positions are byte offsets of the next line; a resume seeks to one', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'ckpt-ndjson-')), 'in.ndjson');
  const lines = ['{"n":1}', '', '{"n":"ü"}', '{"n":3}'];
  writeFileSync(path, lines.join('\n')); // no trailing newline
  const source = ndjsonFile<{ n: unknown }>(path, { chunkBytes: 3 });
  const all = await collect(source);
  assert.deepEqual(
    all.map((item) => item.record.n),
    [1, 'ü', 3],
  );
  assert.deepEqual(
    all.map((item) => item.position),
    [8, 20, 27],
  );
  assert.equal(await source.size?.(), 3, 'records: the blank line is none');
  const resumed = await collect(source, all[0]?.position);
  assert.deepEqual(
    resumed.map((item) => item.record.n),
    ['ü', 3],
  );
  assert.deepEqual(await collect(source, 27), []);
});

test('ndjsonFile: a line that is not JSON is yielded with an error, never dropped', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'ckpt-ndjson-')), 'in.ndjson');
  writeFileSync(path, '{"ok":1}\nnot json\n{"ok":2}\n');
  const items = await collect(ndjsonFile(path));
  assert.equal(items.length, 3);
  assert.equal(items[1]?.record, 'not json');
  assert.match(items[1]?.error?.message ?? '', /line ending at byte 18 is not JSON/);
  assert.equal(items[2]?.error, undefined);
});

test('ndjsonFile: the fingerprint changes when the file does', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'ckpt-ndjson-')), 'in.ndjson');
  writeFileSync(path, '{"a":1}\n');
  const before = await ndjsonFile(path).fingerprint?.();
  writeFileSync(path, '{"a":2}\n');
  assert.notEqual(await ndjsonFile(path).fingerprint?.(), before);
});

test('ndjsonFile: size() counts records, not blank lines (a share of the records, such as a maxPercent limit, is of the records)', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'ckpt-ndjson-')), 'in.ndjson');
  writeFileSync(path, '{"n":1}\r\n\r\n{"n":2}\n\n  \n\t\n{"n":3}\n\n');
  const source = ndjsonFile<{ n: number }>(path);
  assert.equal((await collect(source)).length, 3);
  assert.equal(await source.size?.(), 3);
});
