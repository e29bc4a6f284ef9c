// ctx.once/ctx.step keys: generation-scoped by default (a --rerun or reset runs them again),
// instance-scoped on request (never again for the instance); a step left in doubt by a SIGKILL
// is settled by its verify, whose { result } the next step receives.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const count = (log: string[], prefix: string) => log.filter((line) => line.startsWith(prefix)).length;

test("scope: 'instance' keys outlive --rerun and reset; default keys run again in each generation", async () => {
  const dir = tempDir();
  const effectLog = join(dir, 'effects.log');
  const args = ['run', fixture('scoped-effects.ts'), '--store', `sqlite:${join(dir, 's.db')}`, '--quiet'];
  const env = { EFFECT_LOG: effectLog };
  for (const extra of [[], ['--rerun']]) {
    const run = await runCli([...args, ...extra], { env });
    assert.equal(run.code, 0, run.stderr);
  }
  const reset = await runCli(['reset', 'scoped-effects', '--store', `sqlite:${join(dir, 's.db')}`], { env });
  assert.equal(reset.code, 0, reset.stderr);
  const third = await runCli(args, { env });
  assert.equal(third.code, 0, third.stderr);

  const log = readFileSync(effectLog, 'utf8').trim().split('\n');
  assert.deepEqual(
    log.filter((line) => line.startsWith('welcome')),
    ['welcome 0', 'welcome 1', 'welcome 2'],
    'each welcome once, over three generations',
  );
  assert.equal(count(log, 'report '), 9, 'each report once per generation');
  assert.equal(count(log, 'issue '), 9, 'steps are per generation');
});

test('a step in doubt after a SIGKILL: verify answers { result }, which is returned and recorded, not run again', async () => {
  const dir = tempDir();
  const effectLog = join(dir, 'effects.log');
  const args = ['run', fixture('scoped-effects.ts'), '--store', `sqlite:${join(dir, 's.db')}`, '--quiet'];
  const crashed = await runCli(args, { env: { EFFECT_LOG: effectLog, CRASH_AFTER_ISSUE: '1' } });
  assert.equal(crashed.signal, 'SIGKILL');
  const resumed = await runCli(args, { env: { EFFECT_LOG: effectLog } });
  assert.equal(resumed.code, 0, resumed.stderr);

  const log = readFileSync(effectLog, 'utf8').trim().split('\n');
  assert.equal(count(log, 'issue 1'), 1, 'the issue step in doubt was not run again');
  assert.equal(count(log, 'verify 1'), 1, 'its verify was asked once');
  assert.deepEqual(
    log.filter((line) => line.startsWith('use ')),
    ['use 0 key-0', 'use 1 key-1', 'use 2 key-2'],
    "the next step received verify's result",
  );
  assert.equal(count(log, 'verify '), 1, 'only the step in doubt was verified');
  assert.equal(count(log, 'welcome 1'), 1);

  const events = await runCli(['events', 'scoped-effects', '--store', `sqlite:${join(dir, 's.db')}`, '--json']);
  const inDoubt = (JSON.parse(events.stdout) as { type: string; data: { resolution?: string } }[]).filter((event) => event.type === 'effect:in-doubt');
  assert.deepEqual(
    inDoubt.map((event) => event.data.resolution),
    ['verified-done'],
  );
});
