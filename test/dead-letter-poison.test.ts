// A record whose error the database cannot store as it is (NUL bytes for PostgreSQL, 70,000
// characters for MySQL's 64 KB TEXT) still gets its dead letter on every backend: the text is
// made storable (NUL written \0, cut with a marker), the job completes, and dlq --retry of it
// records the next failure the same way. Before, no letter was written and every run failed.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase } from './helpers/postgres.ts';

const backends: Array<[string, () => Promise<string | { skip: string }>]> = [
  ['sqlite', async () => `sqlite:${join(tempDir('ckpt-poison-'), 'store.db')}`],
  [
    'postgres',
    async () => {
      const database = await freshDatabase('ckpt_poison');
      after(() => database.drop());
      return database.url;
    },
  ],
  [
    'mysql',
    async () => {
      const why = await mysqlSkip();
      if (why !== false) return { skip: why };
      const database = await freshMysqlDatabase('ckpt_poison');
      after(() => database.drop());
      return database.url;
    },
  ],
];

for (const [name, makeStore] of backends) {
  test(`an error text the database cannot store still becomes a dead letter, NUL shown and the rest cut with a marker (${name})`, {
    timeout: 120_000,
  }, async (t) => {
    const store = await makeStore();
    if (typeof store !== 'string') return t.skip(store.skip);
    const env = { POISON: 'both' };
    const run = await runCli(['run', fixture('poison-job.ts'), '--store', store, '--quiet'], { env });
    assert.equal(run.code, 0, run.stderr);
    const listed = await runCli(['dlq', 'poison-job', '--json', '--store', store]);
    assert.equal(listed.code, 0, listed.stderr);
    const letters = JSON.parse(listed.stdout) as Array<{ position: number; error: string; attempts: number }>;
    assert.equal(letters.length, 1);
    const [letter] = letters;
    assert.equal(letter?.position, 2);
    assert.match(letter?.error ?? '', /^poison nul\\0byte x{1000}/);
    assert.match(letter?.error ?? '', /x … \[truncated: \d+ bytes in all\]$/);
    assert.ok(Buffer.byteLength(letter?.error ?? '') <= 32_768);
    // Its record:dead event carries the text as the letter stores it: it carried all 70,000
    // characters, so an error holding a response body of megabytes went whole into the event log
    // at every attempt (found by the outside sweep #7).
    const events = JSON.parse((await runCli(['events', 'poison-job', '--json', '--store', store])).stdout) as Array<{ type: string; data: { error?: string } }>;
    const dead = events.find((event) => event.type === 'record:dead');
    assert.equal(dead?.data.error, letter?.error);

    // A retry that fails the same way is noted on the letter, not lost in an error of the store.
    const retry = await runCli(['dlq', fixture('poison-job.ts'), '--retry', '--store', store], { env });
    assert.match(retry.stdout, /1 still failing/, retry.stderr);
    assert.doesNotMatch(retry.stdout + retry.stderr, /invalid byte sequence|Data too long|unexpected error/);
    const after = JSON.parse((await runCli(['dlq', 'poison-job', '--json', '--store', store])).stdout) as Array<{ attempts: number; error: string }>;
    assert.equal(after.length, 1);
    assert.equal(after[0]?.attempts, 2);
    assert.match(after[0]?.error ?? '', /\[truncated: \d+ bytes in all\]$/);
    const retried = (
      JSON.parse((await runCli(['events', 'poison-job', '--json', '--store', store])).stdout) as Array<{ type: string; data: { error?: string } }>
    ).find((event) => event.type === 'dlq:retry');
    assert.equal(retried?.data.error, after[0]?.error, 'the dlq:retry event carries the text as the letter stores it');
  });
}
