import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MemoryStore, SqliteStore, type Store } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-history-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const backends: [string, () => Store][] = [
  ['memory', () => new MemoryStore()],
  ['sqlite', () => new SqliteStore(join(dir, `${Math.random()}.db`))],
];

for (const [name, open] of backends) {
  describe(`${name} store: failureHistory`, () => {
    it('counts crashed runs and the time runs spent running', async () => {
      const store = open();
      await store.migrate();
      const instance = await store.instance('history', 'h', { params: {}, version: null });
      assert.deepEqual(await store.failureHistory(instance.id), { runningMs: 0, crashed: 0 });
      await store.ensureShards(instance, ['a', 'b'], { version: null });
      const first = await store.claim(instance, 'w:1', 60_000);
      assert.ok(first);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await store.heartbeat(first, { processed: 1 });
      const reaped = await store.reapCrashed(instance.id, (worker) => worker === 'w:1');
      assert.equal(reaped.length, 1);
      const second = await store.claim(instance, 'w:2', 60_000);
      assert.ok(second);
      await store.release(second, 'interrupted', {});
      const history = await store.failureHistory(instance.id);
      assert.equal(history.crashed, 1);
      assert.ok(history.runningMs >= 15 && history.runningMs < 10_000, String(history.runningMs));
      await store.close();
    });
  });
}
