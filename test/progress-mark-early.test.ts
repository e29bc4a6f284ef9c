// Unit tests of the progress mark's early raise (pure logic: the store records the marks written).
// The bound it keeps after real SIGKILLs is proven in rework-truth.test.ts and rework-bound.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProgressMarker } from '../src/job/policy/progress-mark.ts';
import type { Lease, Store } from '../src/store/store.ts';

/** `delayMs`: how long a mark takes to land; the exact final one (step 0) lands at once. */
function recorder(delayMs = 0) {
  const marks: { ceiling: number; step: number }[] = [];
  const store = {
    async markProgress(_lease: Lease, mark: { ceiling: number; step: number }) {
      await sleep(mark.step === 0 ? 0 : delayMs);
      marks.push(mark);
    },
  } as unknown as Store;
  return { marks, store };
}
const lease = {} as Lease;

test('within a quarter step of the ceiling the next mark is started early, so the record at the ceiling needs no wait', async () => {
  const { marks, store } = recorder();
  const marker = new ProgressMarker(store, lease, 0, 200);
  assert.equal(marker.needsMark(1), true);
  await marker.raise(1);
  const first = marks[0]?.ceiling ?? 0;
  let count = 2;
  for (; count <= first; count++) assert.equal(marker.needsMark(count), false);
  await sleep(5);
  assert.equal(marks.length, 2, 'the next mark was written before the ceiling was reached');
  assert.equal(marker.needsMark(count), false, 'the record past the first ceiling is dispatched at once');
  const [a, b] = marks;
  assert.ok(a !== undefined && b !== undefined && b.ceiling > a.ceiling);
});

test('one mark at a time, ceilings only grow, and the exact final mark is written last', async () => {
  const { marks, store } = recorder(20);
  const marker = new ProgressMarker(store, lease, 0, 200);
  await marker.raise(1);
  const first = marks[0]?.ceiling ?? 0;
  for (let count = 2; count <= first; count++) marker.needsMark(count);
  // The early mark is under way (20 ms); a wait at the ceiling waits for it, and writes no second one.
  assert.equal(marker.needsMark(first + 1), true);
  await marker.raise(first + 1);
  assert.equal(marks.length, 2);
  for (let count = first + 2; count <= (marks[1]?.ceiling ?? 0); count++) marker.needsMark(count);
  // An early mark is under way now (the loop went past a quarter step below the second ceiling).
  await marker.final(first + 3);
  await sleep(50);
  assert.deepEqual(marks.at(-1), { ceiling: first + 3, step: 0 }, 'no mark lands after the exact one');
  assert.equal(marks.length, 4);
  const ceilings = marks.slice(0, -1).map((mark) => mark.ceiling);
  assert.deepEqual(
    ceilings,
    [...ceilings].sort((x, y) => x - y),
  );
});
