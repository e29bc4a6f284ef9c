// SIGTERM or SIGINT during `ckpt plan` stores no plan and exits 3 with one line. Before, a stop
// during the last shard ended that shard's read early and the plan of the records read so far was
// stored and printed as the whole plan (exit 0: "read 459 records", a reviewer could approve a
// plan missing most of the effects); a stop during an earlier shard printed "unexpected error:
// the plan run was stopped" and exited 1.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, isOneLineError, spawnCli, tempDir } from './helpers/cli.ts';

for (const [signal, shard] of [
  ['SIGTERM', 'b'],
  ['SIGINT', 'a'],
] as const) {
  test(`${signal} while ckpt plan reads shard ${shard} of a, b: exit 3, one line, no plan stored`, async () => {
    const dir = tempDir();
    const mark = join(dir, 'mark');
    const db = join(dir, 's.db');
    const { child, done } = spawnCli(['plan', fixture('slow-plan.ts'), '--store', `sqlite:${db}`], {
      env: { CKPT_TEST_MARK: mark, CKPT_TEST_MARK_SHARD: shard },
    });
    const deadline = Date.now() + 20_000;
    while (!existsSync(mark) && Date.now() < deadline) await sleep(10);
    assert.ok(existsSync(mark), `the plan reached shard ${shard}`);
    child.kill(signal);
    const result = await done;
    assert.equal(result.code, 3, `${result.stderr}${result.stdout.slice(0, 300)}`);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, /the plan run was interrupted before it read every shard; nothing was stored: run ckpt plan again/);
    assert.doesNotMatch(result.stdout, /apply exactly this plan/);
    const store = new DatabaseSync(db);
    assert.equal(Number(store.prepare('SELECT count(*) AS n FROM plans').get()?.n), 0, 'no plan stored');
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
}
