// A PostgreSQL or MySQL store keeps no key file, so its audit chain says which secret key may
// extend it: an instance whose events are keyed with CKPT_SECRET_KEY refuses a run (and any
// command that would write its log) with that key missing or another (exit 4, one line), before
// anything is written, instead of linking events no key verifies, which broke the chain for
// good. The key it was keyed with resumes the run, and the chain verifies whole.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli } from './helpers/cli.ts';
import { sqlStores } from './helpers/sql-stores.ts';

const STEP_SECRET = 'sk_STEP_server_41c';
const KEY = 'k'.repeat(40);
const OTHER = 'o'.repeat(40);

for (const store of sqlStores.filter((candidate) => candidate.name !== 'sqlite')) {
  test(`${store.title}: a keyed audit log refuses a run with its key missing or another, and resumes with it`, {
    skip: await store.skip(),
    timeout: 120_000,
  }, async () => {
    const database = await store.database();
    try {
      const url = database.store();
      const run = ['run', fixture('keyed-steps.ts'), '--store', url, '--quiet'];
      const crashed = await runCli(run, { env: { STEP_SECRET, CRASH_AT: '3', CKPT_SECRET_KEY: KEY } });
      assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
      const eventsBefore = (
        await database.rows(`SELECT count(*) AS n FROM ${database.table('events', store.name === 'postgres' ? 'checkpointed' : undefined)}`)
      )[0]?.n;

      const missing = await runCli(run, { env: { STEP_SECRET } });
      assert.equal(missing.code, 4, missing.stderr);
      assert.ok(isOneLineError(missing.stderr), missing.stderr);
      assert.match(missing.stderr, /audit log is keyed with a secret key, which is not set here: set CKPT_SECRET_KEY/);
      const other = await runCli(run, { env: { STEP_SECRET, CKPT_SECRET_KEY: OTHER } });
      assert.equal(other.code, 4, other.stderr);
      assert.ok(isOneLineError(other.stderr), other.stderr);
      assert.match(other.stderr, /CKPT_SECRET_KEY is not the key instance \d+'s audit log was keyed with/);
      const status = await runCli(['status', '--store', url]);
      assert.equal(status.code, 4, `status would record the crashed run without the key: ${status.stderr}`);
      assert.equal(
        (await database.rows(`SELECT count(*) AS n FROM ${database.table('events', store.name === 'postgres' ? 'checkpointed' : undefined)}`))[0]?.n,
        eventsBefore,
        'the refused commands wrote no event',
      );

      const resumed = await runCli(run, { env: { STEP_SECRET, CKPT_SECRET_KEY: KEY } });
      assert.equal(resumed.code, 0, resumed.stderr);
      const crashes = await database.rows(
        `SELECT run_id FROM ${database.table('events', store.name === 'postgres' ? 'checkpointed' : undefined)} WHERE type = 'run:crashed'`,
      );
      assert.equal(crashes.length, 1, 'the crashed run is logged once, by the run with the key (the refused commands did not mark it)');
      const audit = await runCli(['audit', 'keyed-steps', '--store', url, '--verify'], { env: { CKPT_SECRET_KEY: KEY } });
      assert.equal(audit.code, 0, audit.stdout + audit.stderr);
      assert.match(audit.stdout, /chain intact/);
    } finally {
      await database.drop();
    }
  });
}
