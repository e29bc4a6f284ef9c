// A limit's kind is any text a job names (`limits: { 'send mail': … }`, `kind: 'a=b'`), and the
// hold tells the operator the command that releases it, quoted for the shell. That command, run
// as printed through a real shell with N filled in, must release the hold: before, `--raise`
// took a kind only up to its first space or `=`, so 'send mail=+5' was refused ("--raise must be
// kind=+N") and such a hold could never be released.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ckptBin, repoRoot, runCli, tempDir } from './helpers/cli.ts';

for (const kind of ['send mail', 'a=b', "revoke 'old' keys"]) {
  test(`a hold on the limit kind ${JSON.stringify(kind)} is released by the command it prints`, async () => {
    const dir = tempDir();
    const jobFile = join(dir, 'job.ts');
    writeFileSync(
      jobFile,
      `import { defineJob, range } from ${JSON.stringify(join(repoRoot, 'src', 'index.ts'))};
export default defineJob({
  name: 'mailer',
  source: () => range(0, 3),
  limits: { ${JSON.stringify(kind)}: { max: 1 } },
  async process(n, ctx) { await ctx.once('m:' + n, async () => undefined, { kind: ${JSON.stringify(kind)} }); },
});
`,
    );
    const store = ['--store', `sqlite:${join(dir, 's.db')}`];
    try {
      const held = await runCli(['run', jobFile, ...store, '--quiet']);
      assert.equal(held.code, 7, held.stderr);
      const printed = /approve with: (.*), then run again/.exec(held.stderr)?.[1];
      assert.ok(printed, held.stderr);
      // As an operator pastes it: through a shell, with N, NAME and TEXT filled in.
      const command = printed
        .replace(/^ckpt /, `${JSON.stringify(process.execPath)} ${JSON.stringify(ckptBin)} `)
        .replace(/=\+N'?/, (found) => found.replace('N', '5'))
        .replace('--by NAME --reason TEXT', `--by ana --reason ticket ${store.join(' ')}`);
      const approved = spawnSync('/bin/sh', ['-c', command], { encoding: 'utf8', env: { ...process.env, CKPT_STORE: undefined, DATABASE_URL: undefined } });
      assert.equal(approved.status, 0, `${command}\n${approved.stdout}${approved.stderr}`);
      assert.match(approved.stdout, /^released limit:/);
      const done = await runCli(['run', jobFile, ...store, '--quiet']);
      assert.equal(done.code, 0, done.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
