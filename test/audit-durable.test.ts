// The audit log is durable: SIGKILL right after an effect's fn ran, 20 times in a row on one
// instance. Each run settles the key the previous run left in doubt (run again, or verify says
// done / not done), then is itself killed inside the next effect, before any checkpoint. Every
// `effect:in-doubt` and `effect:verified` must still be in `ckpt events`, and the chain intact.
// On SQLite, main's code kept 1 of these 20 `effect:in-doubt` (its events rode the job's
// transaction, which each kill rolled back).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase } from './helpers/postgres.ts';

const KILLS = 20;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

interface Event {
  type: string;
  generation: number;
  data: { key?: string; resolution?: string; done?: boolean; attempt?: number };
}

async function killAfterEveryEffect(store: string): Promise<void> {
  const log = join(tempDir(), 'effects.log');
  const args = ['run', fixture('audit-effects.ts'), '--store', store, '--quiet'];
  for (let n = 0; n < KILLS; n++) {
    const killed = await runCli(args, { env: { EFFECT_LOG: log, CRASH_AFTER_FN: `notify:${n}` } });
    assert.equal(killed.signal, 'SIGKILL', `run ${n} was to be killed inside notify:${n}: ${killed.stderr}`);
  }
  const finished = await runCli(args, { env: { EFFECT_LOG: log } });
  assert.equal(finished.code, 0, finished.stderr);

  const listed = await runCli(['events', 'audit-effects', '--store', store, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const events = JSON.parse(listed.stdout) as Event[];
  const of = (type: string, key: string) => events.filter((event) => event.type === type && event.data.key === key);
  for (let n = 0; n < KILLS; n++) {
    const key = `notify:${n}`;
    const expected = n % 3 === 0 ? 'run-again' : n % 3 === 1 ? 'verified-done' : 'verified-not-done';
    assert.deepEqual(
      of('effect:in-doubt', key).map((event) => event.data.resolution),
      [expected],
      `${key}: one effect:in-doubt (${expected}) in ckpt events`,
    );
    assert.deepEqual(
      of('effect:verified', key).map((event) => event.data.done),
      n % 3 === 0 ? [] : [n % 3 === 1],
      `${key}: verify's answer is in ckpt events`,
    );
    // The attempt that was killed announced itself before fn ran.
    assert.ok(
      of('effect:start', key).some((event) => event.data.attempt === 1),
      `${key}: effect:start of the killed attempt`,
    );
  }
  assert.equal(events.filter((event) => event.type === 'run:crashed').length, KILLS);
  const audit = await runCli(['audit', 'audit-effects', '--store', store, '--verify']);
  assert.equal(audit.code, 0, audit.stderr);
  assert.match(audit.stdout, /chain intact/);
}

test(`SQLite: ${KILLS} SIGKILLs right after an effect's fn → every effect:in-doubt and effect:verified is in ckpt events`, { timeout: 240_000 }, async () => {
  await killAfterEveryEffect(`sqlite:${join(tempDir(), 'store.db')}`);
});

test(`PostgreSQL: ${KILLS} SIGKILLs right after an effect's fn → every effect:in-doubt and effect:verified is in ckpt events`, {
  timeout: 240_000,
}, async () => {
  const database = await freshDatabase();
  cleanups.push(database.drop);
  await killAfterEveryEffect(`${database.url}?schema=ckpt_audit`);
});

test(`MySQL/MariaDB: ${KILLS} SIGKILLs right after an effect's fn → every effect:in-doubt and effect:verified is in ckpt events`, {
  timeout: 240_000,
  skip: await mysqlSkip(),
}, async () => {
  const database = await freshMysqlDatabase();
  cleanups.push(database.drop);
  await killAfterEveryEffect(`${database.url}?prefix=ckpt_`);
});
