// Times on the database's clock: a host whose clock runs an hour ahead must not reorder the event log or put
// an hour into `ckpt status`. Events are listed in the order they were appended (the chain's), and
// stamped on the store's (the database's) clock: the worker's time moved by the offset its store
// measured at open; ages are measured on the database's clock too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixture, runCli } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase } from './helpers/postgres.ts';

const HOUR = 3_600_000;
const skewed = (ms: number) => ({ NODE_OPTIONS: `--import=${fixture('clock-skew.mjs')}`, CKPT_TEST_CLOCK_SKEW_MS: String(ms) });

const servers = [
  { name: 'postgres', skip: async () => false as const, fresh: freshDatabase },
  { name: 'mysql', skip: mysqlSkip, fresh: freshMysqlDatabase },
];

for (const server of servers) {
  test(`${server.name}: a worker an hour ahead neither moves its events after later ones, nor dates them an hour ahead, nor makes status say an hour ago`, {
    skip: await server.skip(),
  }, async () => {
    const database = await server.fresh();
    try {
      const store = ['--store', database.url];
      const run = (tag: string, env: NodeJS.ProcessEnv) =>
        runCli(['run', fixture('count-job.ts'), ...store, '--param', `tag=${tag}`, '--quiet'], { env: { CKPT_TEST_RECORDS: '10', ...env } });
      const ahead = await run('ahead', skewed(HOUR));
      assert.equal(ahead.code, 0, ahead.stderr);
      const onTime = await run('on-time', {});
      assert.equal(onTime.code, 0, onTime.stderr);

      const events = await runCli(['events', 'count', ...store, '--json']);
      assert.equal(events.code, 0, events.stderr);
      const tags = (JSON.parse(events.stdout) as { params: { tag: string }; type: string }[])
        .filter((event) => event.type === 'run:start')
        .map((event) => event.params.tag);
      assert.deepEqual(tags, ['ahead', 'on-time'], 'listed in the order they happened, not by the skewed clock');
      const future = (JSON.parse(events.stdout) as { type: string; at: number }[]).filter((event) => event.at > Date.now() + 60_000);
      assert.deepEqual(
        future.map((event) => `${event.type} at ${new Date(event.at).toISOString()}`),
        [],
        "stamped on the database's clock, not the skewed worker's",
      );

      // `ckpt status` on the skewed host: the checkpoints were just written.
      const status = await runCli(['status', ...store], { env: skewed(HOUR) });
      assert.equal(status.code, 0, status.stderr);
      const lines = status.stdout.split('\n').filter((line) => line.startsWith('count'));
      assert.equal(lines.length, 2, status.stdout);
      for (const line of lines) assert.match(line, / \d+(\.\d+)? (ms|s) ago /, `an age of seconds, not an hour: ${status.stdout}`);
    } finally {
      await database.drop();
    }
  });
}
