import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../errors.ts';
import { csvFile } from './csv.ts';
import type { Source } from './source.ts';

async function collect<R, P>(source: Source<R, P>, after?: P) {
  const items = [];
  for await (const item of source.read(after, { signal: new AbortController().signal })) items.push(item);
  return items;
}

function write(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'ckpt-csv-')), 'in.csv');
  writeFileSync(path, text);
  return path;
}

// Header with a BOM, CRLF and LF endings, a quoted newline, doubled quotes, a multi-byte
// character, a blank line, a malformed quote, a short row, and no final newline.
const lines = [
  '\uFEFFid,name,note\r\n',
  '1,Ada,"line one\nline two"\r\n',
  '2,"Bö ""the"" B",plain\n',
  '\n',
  '3,"bad"quote,x\n',
  '4,short\n',
  '5,"a,b",""\n',
  '6,last,end',
];

test('csvFile: records by header, positions are exact byte offsets past each record, resume seeks', async () => {
  const path = write(lines.join(''));
  const ends = lines.map((_, index) => Buffer.byteLength(lines.slice(0, index + 1).join('')));
  for (const chunkBytes of [3, 7, 1 << 16]) {
    const source = csvFile(path, { chunkBytes });
    const items = await collect(source);
    assert.deepEqual(
      items.map((item) => item.position),
      [ends[1], ends[2], ends[4], ends[5], ends[6], ends[7]],
      `chunkBytes ${chunkBytes}`,
    );
    assert.deepEqual(items[0]?.record, { id: '1', name: 'Ada', note: 'line one\nline two' });
    assert.deepEqual(items[1]?.record, { id: '2', name: 'Bö "the" B', note: 'plain' });
    assert.deepEqual(items[4]?.record, { id: '5', name: 'a,b', note: '' });
    assert.deepEqual(items[5]?.record, { id: '6', name: 'last', note: 'end' });
    // Bad rows are yielded with an error and their raw text; the rows after them are intact.
    assert.equal(items[2]?.record, '3,"bad"quote,x');
    assert.match(items[2]?.error?.message ?? '', new RegExp(`record ending at byte ${ends[4]} is not valid CSV`));
    assert.equal(items[3]?.record, '4,short');
    assert.match(items[3]?.error?.message ?? '', /has 2 fields where the header has 3/);
    assert.equal(items[0]?.error, undefined);
    for (const [index, item] of items.entries()) {
      const rest = await collect(source, item.position);
      assert.deepEqual(rest, items.slice(index + 1), `resume after byte ${item.position}`);
    }
  }
  assert.equal(await csvFile(path).size?.(), 6);
});

test('csvFile: without a header, records are arrays or take the given names; an open quote at the end fails alone', async () => {
  const path = write('a;1\nb;"2\n');
  const arrays = await collect(csvFile(path, { columns: false, delimiter: ';' }));
  assert.deepEqual(arrays[0]?.record, ['a', '1']);
  assert.match(arrays[1]?.error?.message ?? '', /not valid CSV \(Quote Not Closed/);
  const named = await collect(csvFile(write('a;1\n'), { columns: ['k', 'v'], delimiter: ';' }));
  assert.deepEqual(named[0]?.record, { k: 'a', v: '1' });
});

test('csvFile: a missing file is a usage error; the fingerprint follows the content', async () => {
  await assert.rejects(collect(csvFile('/nonexistent/x.csv')), UsageError);
  const path = write('id\n1\n');
  const before = await csvFile(path).fingerprint?.();
  writeFileSync(path, 'id\n2\n');
  assert.notEqual(await csvFile(path).fingerprint?.(), before);
});

test('csvFile without a header row (columns a list, or false): a BOM is not part of the first field', async () => {
  const path = write('\uFEFF1,ana\r\n2,ben\r\n');
  for (const chunkBytes of [2, 1 << 16]) {
    const named = await collect(csvFile(path, { columns: ['id', 'name'], chunkBytes }));
    assert.deepEqual(
      named.map((item) => item.record),
      [
        { id: '1', name: 'ana' },
        { id: '2', name: 'ben' },
      ],
    );
    assert.deepEqual(
      named.map((item) => item.position),
      [10, 17],
    );
    const arrays = await collect(csvFile(path, { columns: false, chunkBytes }));
    assert.deepEqual(
      arrays.map((item) => item.record),
      [
        ['1', 'ana'],
        ['2', 'ben'],
      ],
    );
    assert.equal(await csvFile(path, { columns: false }).size?.(), 2);
  }
});

test('csvFile: a column named __proto__ (or constructor) is a field like any other, not lost or set as the prototype', async () => {
  const path = write('id,__proto__,constructor\n1,{},x\n');
  const [item] = await collect(csvFile(path));
  const record = item?.record as Record<string, string>;
  assert.equal(Object.getPrototypeOf(record), Object.prototype);
  assert.deepEqual(Object.keys(record), ['id', '__proto__', 'constructor']);
  assert.equal(Object.getOwnPropertyDescriptor(record, '__proto__')?.value, '{}');
  assert.equal(record.constructor, 'x');
  assert.equal(JSON.stringify(record), '{"id":"1","__proto__":"{}","constructor":"x"}');
  const named = await collect(csvFile(write('1,{}\n'), { columns: ['id', '__proto__'] }));
  assert.equal(JSON.stringify(named[0]?.record), '{"id":"1","__proto__":"{}"}');
});

test('csvFile: a header row that names a column twice fails the read saying so, instead of records that keep one of the two', async () => {
  const path = write('id,email,email\n1,a@example.com,b@example.com\n');
  await assert.rejects(collect(csvFile(path)), /the header row names "email" twice/);
  assert.throws(() => csvFile(path, { columns: ['id', 'email', 'email'] }), /columns names "email" twice/);
});
