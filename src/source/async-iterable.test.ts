import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromAsyncIterable } from './async-iterable.ts';
import type { Source } from './source.ts';

async function collect<R, P>(source: Source<R, P>, after?: P) {
  const items: { position: P; record: R }[] = [];
  for await (const item of source.read(after, { signal: new AbortController().signal })) items.push(item);
  return items;
}

const rows = [{ id: 'a1' }, { id: 'b7' }, { id: 'c3' }];

test('fromAsyncIterable: a seeking cursor is handed the position and starts after it', async () => {
  const asked: (string | undefined)[] = [];
  const source = fromAsyncIterable(
    async function* (after: string | undefined) {
      asked.push(after);
      yield* rows.filter((row) => after === undefined || row.id > after);
    },
    { position: (row) => row.id },
  );
  assert.deepEqual(
    (await collect(source)).map((item) => item.position),
    ['a1', 'b7', 'c3'],
  );
  assert.deepEqual(
    (await collect(source, 'b7')).map((item) => item.record),
    [{ id: 'c3' }],
  );
  assert.deepEqual(asked, [undefined, 'b7']);
});

test('fromAsyncIterable: a ready iterable resumes by skipping up to the position, and is read once', async () => {
  const generator = (async function* () {
    yield* rows;
  })();
  const source = fromAsyncIterable(generator, { position: (row) => [row.id] });
  assert.deepEqual(
    (await collect(source, ['a1'])).map((item) => item.position),
    [['b7'], ['c3']],
  );
  await assert.rejects(collect(source), /already read/);
  await assert.rejects(collect(fromAsyncIterable(rows, { position: (row) => row.id }), 'zz'), /never came up again/);
  assert.equal((await collect(fromAsyncIterable(rows, { position: (row) => row.id }), 'c3')).length, 0);
  assert.throws(() => fromAsyncIterable(rows, { position: (row) => row.id, resume: 'seek' }), /cannot seek/);
});
