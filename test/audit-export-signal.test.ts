// `ckpt audit --export --out FILE` stopped by SIGTERM or SIGINT (a supervisor, Ctrl-C): before,
// a signal that landed while FILE's temporary file was open killed the process there (exit 143),
// leaving `.FILE.<pid>.<hex>.tmp` beside it for good. Now one that lands while it writes lets the
// write end, whole (exit 0), and no temporary file is left (one while the store is read stops the
// export with one line, nothing written, exit 3).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';

async function storeWithEvents(dir: string): Promise<string[]> {
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  for (const round of ['1', '2', '3', '4', '5', '6']) {
    const run = await runCli(['run', fixture('audit-effects.ts'), ...store, '--param', `round=${round}`, '--quiet'], {
      env: { EFFECT_LOG: join(dir, 'effects.log') },
    });
    assert.equal(run.code, 0, run.stderr);
  }
  return store;
}

const temporaries = (dir: string) => readdirSync(dir).filter((name) => name.endsWith('.tmp'));

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} while the export's temporary file is open: the write ends whole (exit 0), no temporary file is left`, { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const store = await storeWithEvents(dir);
    const outDir = tempDir('ckpt-audit-signal-out-');
    const whole = join(dir, 'whole.ndjson');
    assert.equal((await runCli(['audit', 'audit-effects', ...store, '--export', 'ndjson', '--out', whole])).code, 0);
    const expected = readFileSync(whole, 'utf8');
    let landed = false;
    for (let attempt = 0; attempt < 20 && !landed; attempt++) {
      const out = join(outDir, `evidence-${attempt}.ndjson`);
      const { child, done } = spawnCli(['audit', 'audit-effects', ...store, '--export', 'ndjson', '--out', out]);
      // Frozen the moment the temporary file appears; signalled only if it is still there (the
      // process between its open and its rename), then let go.
      const watcher = watch(outDir, (_event, name) => {
        if (landed || typeof name !== 'string' || !name.endsWith('.tmp')) return;
        child.kill('SIGSTOP');
        if (existsSync(join(outDir, name))) {
          landed = true;
          child.kill(signal);
        }
        child.kill('SIGCONT');
      });
      const result = await done;
      watcher.close();
      if (!landed) continue;
      assert.deepEqual(temporaries(outDir), [], `attempt ${attempt}: a temporary file was left (${result.signal ?? result.code})`);
      assert.equal(result.signal, null, `killed by ${result.signal}`);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(readFileSync(out, 'utf8'), expected, 'the export is whole');
    }
    assert.ok(landed, 'no signal landed while the temporary file was open');
  });
}
