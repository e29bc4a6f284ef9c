// ckpt plan --approve on a PostgreSQL or MySQL store whose audit log is keyed: without the key (or
// with another) the approval is refused before it is stored. It was stored first and its
// plan:approved event refused after (exit 4, 'set CKPT_SECRET_KEY'), so the plan read '1 of 1
// required: ana' and its apply performed every effect on an approval the audit log never
// recorded. Found by the outside sweep #7.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';
import { sqlStores } from './helpers/sql-stores.ts';

const KEY = 'k'.repeat(40);

for (const store of sqlStores.filter((candidate) => candidate.name !== 'sqlite')) {
  test(`${store.title}: a plan approval the keyed audit log cannot record is not stored`, { skip: await store.skip(), timeout: 120_000 }, async () => {
    const database = await store.database();
    try {
      const url = database.store();
      const env = { CKPT_TEST_LOG: join(tempDir(), 'calls.log'), CKPT_SECRET_KEY: KEY };
      // A keyed log: a run of the job with its key, then a reset, so a plan of the next generation.
      assert.equal((await runCli(['run', fixture('planned-once.ts'), '--store', url, '--quiet'], { env })).code, 0);
      assert.equal((await runCli(['reset', 'planned-once', '--store', url], { env })).code, 0);
      const planned = await runCli(['plan', fixture('planned-once.ts'), '--store', url, '--json'], { env });
      assert.equal(planned.code, 0, planned.stderr);
      const plan = JSON.parse(planned.stdout) as { id: string };

      for (const key of ['', 'o'.repeat(40)]) {
        const refused = await runCli(['plan', '--approve', plan.id, '--by', 'ana', '--reason', 'reviewed', '--store', url], {
          env: { ...env, CKPT_SECRET_KEY: key },
        });
        assert.equal(refused.code, 4, refused.stderr);
        assert.ok(isOneLineError(refused.stderr), refused.stderr);
        assert.match(refused.stderr, /CKPT_SECRET_KEY/);
      }
      const shown = await runCli(['plan', '--show', plan.id, '--store', url], { env });
      assert.match(shown.stdout, /approvals: 0 of 1 required/);
      const early = await runCli(['apply', plan.id, '--store', url, '--quiet'], { env });
      assert.equal(early.code, 4, 'no approval stored: the apply is refused');

      // With its key the approval is stored and recorded, and the apply runs.
      assert.equal((await runCli(['plan', '--approve', plan.id, '--by', 'ana', '--reason', 'reviewed', '--store', url], { env })).code, 0);
      assert.equal((await runCli(['apply', plan.id, '--store', url, '--quiet'], { env })).code, 0);
      const verified = await runCli(['audit', 'planned-once', '--verify', '--store', url], { env });
      assert.equal(verified.code, 0, verified.stderr);
      const events = JSON.parse((await runCli(['events', 'planned-once', '--store', url, '--json'], { env })).stdout) as { type: string }[];
      assert.equal(events.filter((event) => event.type === 'plan:approved').length, 1);
    } finally {
      await database.drop();
    }
  });
}
