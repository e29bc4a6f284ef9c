// Effect keys are made from data: a display name cut mid-emoji ('ana\ud83d', 'ana\ud83c') holds
// a lone surrogate, which every store writes as U+FFFD, so two such keys were one. On SQLite the
// second effect returned the first's result without running (exit 0, one disable missing from
// the directory's log); on PostgreSQL the record failed with "effect key … changed while it was
// claimed". Now ctx.once refuses such a key before anything is written: the record fails naming
// it (exit 1), and no effect runs. Keys with emoji and accents are effects like any other.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

async function run(names: string) {
  const dir = tempDir();
  const log = join(dir, 'effects.log');
  const result = await runCli(['run', fixture('keyed-effects.ts'), '--store', `sqlite:${join(dir, 's.db')}`, '--quiet'], {
    env: { CKPT_TEST_NAMES: names, CKPT_TEST_LOG: log },
  });
  const performed = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
  rmSync(dir, { recursive: true, force: true });
  return { result, performed };
}

test('effect keys with emoji and accents: each effect performed once', async () => {
  const { result, performed } = await run('["ana 👤", "ana 👥", "josé", "bob"]');
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(performed, ['"ana 👤"', '"ana 👥"', '"josé"', '"bob"']);
});

test('an effect key with a lone surrogate fails its record naming it, and no effect is skipped or run', async () => {
  const { result, performed } = await run('["ana\\ud83d", "ana\\ud83c", "bob"]');
  assert.equal(result.code, 1, `${result.stderr} (performed: ${performed.join(' ')})`);
  assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
  assert.match(result.stderr, /record at position 0 failed: TypeError: the effect key "disable:ana\\ud83d" holds a lone surrogate/);
  assert.deepEqual(performed, []);
});
