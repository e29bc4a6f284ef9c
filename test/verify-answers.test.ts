// A key in doubt after a SIGKILL is settled by verify, which must say true, false or { result }.
// An answer that is none of these (an API's "yes" or 1, a row object, a verify that forgot to
// return) was taken as "did not happen" and the effect ran again: a second disable, though the
// directory's log shows the first. Now the record fails naming the answer (exit 1), the key stays
// in doubt, and the effect is not run again; `false` still runs it again, `true` settles it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, tempDir } from './helpers/cli.ts';

async function crashThenResume(answer: string) {
  const dir = tempDir();
  const env = { CKPT_TEST_LOG: join(dir, 'directory.log'), CKPT_TEST_CRASH: join(dir, 'crashed'), CKPT_TEST_ANSWER: answer };
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  const first = await runCli(['run', fixture('verify-answers.ts'), ...store, '--quiet'], { env });
  assert.equal(first.signal, 'SIGKILL', `${first.stderr}`);
  const resumed = await runCli(['run', fixture('verify-answers.ts'), ...store, '--quiet'], { env });
  const disables = existsSync(env.CKPT_TEST_LOG) ? readFileSync(env.CKPT_TEST_LOG, 'utf8').trim().split('\n').length : 0;
  rmSync(dir, { recursive: true, force: true });
  return { resumed, disables };
}

for (const [answer, shown] of [
  ['"yes"', '"yes"'],
  ['1', '1'],
  ['{"disabled":true}', '{"disabled":true}'],
  ['undefined', 'undefined \\(nothing returned\\)'],
] as const) {
  test(`verify answering ${answer}: the record fails naming it, the effect is not run again`, async () => {
    const { resumed, disables } = await crashThenResume(answer);
    assert.equal(disables, 1, 'the directory was called once');
    assert.equal(resumed.code, 1, resumed.stderr);
    assert.match(
      resumed.stderr,
      new RegExp(`verify of disable:1 answered ${shown}: it must answer true \\(it happened\\), false \\(it did not\\) or \\{ result \\}`),
    );
  });
}

test('verify answering false runs the effect again; true settles it', async () => {
  const no = await crashThenResume('false');
  assert.equal(no.resumed.code, 0, no.resumed.stderr);
  assert.equal(no.disables, 2);
  const yes = await crashThenResume('true');
  assert.equal(yes.resumed.code, 0, yes.resumed.stderr);
  assert.equal(yes.disables, 1);
});
