// Guarantee 4: a crash after fn ran and before its completion was recorded → on resume `verify`
// decides and fn is not called again; without verify fn runs again and `effect:in-doubt` is in
// `ckpt events`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n');
const count = (file: string, line: string) => lines(file).filter((entry) => entry === line).length;

async function crashInDoubt(verify: 'yes' | 'no') {
  const dir = tempDir();
  const store = `sqlite:${join(dir, 'store.db')}`;
  const log = join(dir, 'effects.log');
  const args = ['run', fixture('effects.ts'), '--store', store, '--param', `verify=${verify}`, '--quiet'];
  const crashed = await runCli(args, { env: { EFFECT_LOG: log, CRASH_AFTER_FN: 'notify:2' } });
  assert.equal(crashed.signal, 'SIGKILL', `the fixture killed itself inside the effect: ${crashed.stderr}`);
  assert.equal(count(log, 'call notify:2'), 1);
  const resumed = await runCli(args, { env: { EFFECT_LOG: log } });
  assert.equal(resumed.code, 0, resumed.stderr);
  return { store, log };
}

test('in doubt with verify: verify is asked and the effect is not run again', { timeout: 30_000 }, async () => {
  const { store, log } = await crashInDoubt('yes');
  assert.equal(count(log, 'verify notify:2'), 1, 'verify was called for the key in doubt');
  for (const n of [0, 1, 2, 3, 4]) assert.equal(count(log, `call notify:${n}`), 1, `notify:${n} ran exactly once`);
  // Records 0 and 1 were replayed (no checkpoint covered them): their completed keys returned the stored result.
  assert.equal(lines(log).filter((line) => line.startsWith('result notify:0 {"sent":0')).length, 2);
  assert.equal(count(log, 'verify notify:0'), 0, 'a completed key is not in doubt');
  const events = await runCli(['events', 'effects', '--store', store, '--json']);
  const inDoubt = (JSON.parse(events.stdout) as { type: string; data: { key: string; resolution: string } }[]).filter((e) => e.type === 'effect:in-doubt');
  assert.deepEqual(
    inDoubt.map((event) => [event.data.key, event.data.resolution]),
    [['notify:2', 'verified-done']],
  );
});

test('in doubt without verify: the effect runs again and effect:in-doubt names it in ckpt events', { timeout: 30_000 }, async () => {
  const { store, log } = await crashInDoubt('no');
  assert.equal(count(log, 'call notify:2'), 2, 'without verify the effect in doubt is run again');
  for (const n of [0, 1, 3, 4]) assert.equal(count(log, `call notify:${n}`), 1, `notify:${n} ran exactly once`);
  const events = await runCli(['events', 'effects', '--store', store]);
  assert.equal(events.code, 0, events.stderr);
  const line = events.stdout.split('\n').find((entry) => entry.includes('effect:in-doubt'));
  assert.ok(line, `ckpt events shows effect:in-doubt:\n${events.stdout}`);
  assert.match(line, /notify:2/);
  assert.match(line, /run-again/);
});
