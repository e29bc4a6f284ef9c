// SIGTERM or SIGINT during `ckpt dlq <job-file> --retry`: the letter under way finishes, the
// rest stay dead letters, and the command exits 3 with one line saying how many were not tried.
// Before, the signal killed it (exit 143 / 130, nothing said). Either way no letter's effect ran
// twice; the retry run again finishes them, each effect once.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} during ckpt dlq --retry: exit 3, one line, the rest retried by the next run, each effect once`, async () => {
    const dir = tempDir();
    const env = { CKPT_TEST_HEAL: join(dir, 'healed'), CKPT_TEST_LOG: join(dir, 'effects.log') };
    const store = ['--store', `sqlite:${join(dir, 's.db')}`];
    const first = await runCli(['run', fixture('slow-letters.ts'), ...store, '--quiet'], { env });
    assert.equal(first.code, 0, first.stderr);
    writeFileSync(env.CKPT_TEST_HEAL, '');
    const { child, done } = spawnCli(['dlq', fixture('slow-letters.ts'), '--retry', ...store], { env });
    const performed = () => {
      try {
        return readFileSync(env.CKPT_TEST_LOG, 'utf8').trim().split('\n');
      } catch {
        return [];
      }
    };
    const deadline = Date.now() + 20_000;
    while (performed().length < 10 && Date.now() < deadline) await sleep(10);
    child.kill(signal);
    const stopped = await done;
    assert.equal(stopped.code, 3, `${stopped.stderr}${stopped.stdout}`);
    const lines = stopped.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, stopped.stderr);
    assert.match(
      lines[0] as string,
      /^ckpt: interrupted by a signal: \d+ dead letters of slow-letters were not retried \(every one tried is settled\); run the same command again/,
    );
    const notTried = Number(/: (\d+) dead letters/.exec(lines[0] as string)?.[1]);
    assert.ok(notTried > 0 && notTried < 100, `${notTried} not tried`);
    const listed = await runCli(['dlq', 'slow-letters', ...store, '--json']);
    assert.equal(JSON.parse(listed.stdout).length, notTried, 'the letters not tried are still dead letters');
    const again = await runCli(['dlq', fixture('slow-letters.ts'), '--retry', ...store], { env });
    assert.equal(again.code, 0, again.stderr);
    const effects = performed();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(effects.length, 100, 'every letter’s effect ran');
    assert.equal(new Set(effects).size, 100, 'none twice');
  });
}
