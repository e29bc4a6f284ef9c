// Every new generation is explained by its `instance:reset` event: the event is durable before
// the generation moves (a decision before the act, as the audit log promises). Shown by making
// the store refuse that one event (a trigger on the event log, plain SQL beside the store): `ckpt
// reset` and `ckpt run --rerun` then fail and the generation stays where it was. Before, the
// reset committed first and its event after, so a kill (or a failure) between the two left a
// generation that no event recorded: a rerun of every effect with nothing in the audit log.
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { fixture, runCli } from './helpers/cli.ts';
import { type SqlStoreName, sqlStores, type TestDatabase } from './helpers/sql-stores.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/** Makes the store refuse to append an `instance:reset` event, and nothing else. */
async function refuseResetEvents(name: SqlStoreName, database: TestDatabase, url: string): Promise<void> {
  if (name === 'sqlite') {
    // The event log is in the side file beside the store.
    const side = new DatabaseSync(`${url.slice('sqlite:'.length)}.effects`);
    side.exec("CREATE TRIGGER refuse_reset BEFORE INSERT ON events WHEN NEW.type = 'instance:reset' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    side.close();
  } else if (name === 'postgres') {
    await database.rows(`CREATE FUNCTION ckpt_reset_t.refuse_reset() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.type = 'instance:reset' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$`);
    await database.rows('CREATE TRIGGER refuse_reset BEFORE INSERT ON ckpt_reset_t.events FOR EACH ROW EXECUTE FUNCTION ckpt_reset_t.refuse_reset()');
  } else {
    await database.rows(`CREATE TRIGGER refuse_reset BEFORE INSERT ON ckpt_events FOR EACH ROW
      BEGIN IF NEW.type = 'instance:reset' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF; END`);
  }
}

for (const backend of sqlStores) {
  describe(`a reset is recorded before the generation moves: ${backend.title}`, { skip: await backend.skip() }, () => {
    test('with its event refused, ckpt reset and ckpt run --rerun fail and the generation stays', async () => {
      const database = await backend.database();
      cleanups.push(() => database.drop());
      const url = backend.name === 'postgres' ? database.store('ckpt_reset_t') : database.store();
      const env = { CKPT_TEST_RECORDS: '50' };
      const run = (...extra: string[]) => runCli(['run', fixture('count-job.ts'), '--store', url, '--store-retry-ms', '1', ...extra], { env });
      const first = await run();
      assert.equal(first.code, 0, first.stderr);
      const generation = async () => {
        const status = await runCli(['status', '--store', url, '--json']);
        return (JSON.parse(status.stdout) as { instance: { generation: number } }[])[0]?.instance.generation;
      };
      assert.equal(await generation(), 1);

      await refuseResetEvents(backend.name, database, url);
      const reset = await runCli(['reset', 'count', '--store', url]);
      assert.notEqual(reset.code, 0, 'the reset fails when its event cannot be recorded');
      assert.equal(await generation(), 1, 'no generation without its event (ckpt reset)');
      const rerun = await run('--rerun');
      assert.notEqual(rerun.code, 0, rerun.stdout);
      assert.equal(await generation(), 1, 'no generation without its event (ckpt run --rerun)');
    });
  });
}
