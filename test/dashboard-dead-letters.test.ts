// ckpt dashboard reads an instance's newest dead letters and their count, never every letter: it
// read them all at every refresh (a second, per viewer) and every /metrics scrape to show 50 and
// a number, so an instance that had dead-lettered 100,000 records of 4 KB made each refresh read
// 400 MB (0.6 to 2.2 s by hand on SQLite, 10 ms once it read only what it shows), and one with
// millions never answered. Found by the outside sweep #7.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

const dir = tempDir('ckpt-dashboard-dead-letters-');
after(() => rmSync(dir, { recursive: true, force: true }));

test('an instance with 200,000 dead letters: the page shows the newest 50 and the count, each read quick', { timeout: 120_000 }, async () => {
  const file = join(dir, 'ckpt.db');
  const run = await runCli(['run', fixture('poison-job.ts'), '--store', `sqlite:${file}`, '--quiet'], { env: { POISON: 'huge' } });
  assert.equal(run.code, 0, run.stderr);
  // 200,000 letters more, as a poison stream leaves them: copies of the one the run stored.
  const db = new DatabaseSync(file);
  db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
    INSERT INTO dead_letters (instance_id, generation, shard_id, shard, position, record, error, attempts, run_id, created_at)
    SELECT d.instance_id, d.generation, d.shard_id, d.shard, n.i + 10, d.record, substr(d.error, 1, 2000), d.attempts, d.run_id, d.created_at
    FROM dead_letters d, n`);
  db.close();

  const dashboard = spawnCli(['dashboard', '--store', `sqlite:${file}`, '--port', '0']);
  try {
    const line = await waitForOutput(dashboard.child, (out) => /on http:\/\/\S+\//.test(out));
    const url = (/on (http:\/\/\S+?)\/ /.exec(line) as RegExpExecArray)[1] as string;
    const took: number[] = [];
    let view: { summary: { deadLetters: number }; deadLetters: { position: number }[] } | undefined;
    for (let i = 0; i < 5; i++) {
      await sleep(800); // past the 750 ms a read is shared for: each a read of the store
      const start = performance.now();
      view = (await (await fetch(`${url}/api/instances/default`)).json()) as typeof view;
      took.push(performance.now() - start);
    }
    assert.equal(view?.summary.deadLetters, 200_001);
    assert.equal(view?.deadLetters.length, 50);
    assert.equal(view?.deadLetters[0]?.position, 200_010, 'the newest first');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /^ckpt_instance_dead_letters\{job="poison-job",instance="1"\} 200001$/m);
    // Reading every letter took 600 ms and more a refresh; the newest 50 and a count, a few ms.
    const median = took.sort((a, b) => a - b)[2] as number;
    assert.ok(median < 300, `a refresh took ${Math.round(median)} ms (median of ${took.map(Math.round).join(', ')})`);
  } finally {
    dashboard.child.kill('SIGTERM');
    await dashboard.done;
  }
});
