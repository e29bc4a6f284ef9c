// `ckpt audit --export --out FILE` writes FILE whole or not at all: a full disk (or a crash)
// mid-write leaves the earlier export there as it was and no cut-off file that reads as
// complete. The full disk is a real one, a 16 KB tmpfs (mounted as root; skipped, saying why,
// otherwise); a SIGKILLed export never leaves a short file either.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ckptBin, fixture, isOneLineError, runCli, spawnCli, tempDir } from './helpers/cli.ts';

const mountPoint = join(tempDir('ckpt-audit-full-'), 'small');
mkdirSync(mountPoint);
let skip: string | false = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mountPoint], { stdio: 'pipe' });
  after(() => execFileSync('umount', [mountPoint], { stdio: 'pipe' }));
} catch (error) {
  skip = `cannot mount a 16 KB tmpfs here (${String(error).split('\n', 1)[0]}): run as root to test a full disk`;
}

/** A store whose audit log exports to far more than 16 KB: three instances of 25 effects each. */
async function storeWithEvents(dir: string): Promise<string[]> {
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  for (const round of ['1', '2', '3']) {
    const run = await runCli(['run', fixture('audit-effects.ts'), ...store, '--param', `round=${round}`, '--quiet'], {
      env: { EFFECT_LOG: join(dir, 'effects.log') },
    });
    assert.equal(run.code, 0, run.stderr);
  }
  return store;
}

test('a disk that fills during the export leaves the earlier export whole, and no partial file', { timeout: 60_000, skip }, async () => {
  const dir = tempDir();
  const store = await storeWithEvents(dir);
  const out = join(mountPoint, 'evidence.ndjson');
  const earlier = '{"job":"audit-effects","note":"the export of last week"}\n';
  writeFileSync(out, earlier);
  const result = await runCli(['audit', 'audit-effects', ...store, '--export', 'ndjson', '--out', out]);
  assert.equal(readFileSync(out, 'utf8'), earlier, 'the earlier export is untouched');
  assert.equal(result.code, 2, result.stderr);
  assert.ok(isOneLineError(result.stderr), result.stderr);
  assert.match(result.stderr, /cannot write --out .*evidence\.ndjson: the disk is full/);
  assert.deepEqual(readdirSync(mountPoint), ['evidence.ndjson'], 'no temporary file is left');
});

test('an export SIGKILLed at any moment leaves no file or a whole one', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const store = await storeWithEvents(dir);
  const whole = join(dir, 'whole.ndjson');
  const complete = await runCli(['audit', 'audit-effects', ...store, '--export', 'ndjson', '--out', whole]);
  assert.equal(complete.code, 0, complete.stderr);
  const expected = readFileSync(whole, 'utf8');
  let killedMidway = 0;
  for (let attempt = 0; attempt < 12; attempt++) {
    const out = join(dir, `evidence-${attempt}.ndjson`);
    const { child, done } = spawnCli(['audit', 'audit-effects', ...store, '--export', 'ndjson', '--out', out]);
    // From the moment the process starts to well after it writes: some land before, some after.
    setTimeout(() => child.kill('SIGKILL'), 30 + attempt * 25);
    const result = await done;
    if (result.signal === 'SIGKILL') killedMidway++;
    if (existsSync(out)) assert.equal(readFileSync(out, 'utf8'), expected, `attempt ${attempt}: the file there is the whole export`);
  }
  assert.ok(killedMidway > 0, 'some exports were killed before they ended');
  const left = readdirSync(dir).filter((name) => name.startsWith('.evidence'));
  // A temporary file a SIGKILL left is named as one (dot, .tmp), never the export's own name.
  for (const name of left) assert.match(name, /^\.evidence-\d+\.ndjson\.\d+\.[0-9a-f]{8}\.tmp$/);
});

test('--out naming the store, one of its side files, or any SQLite database is refused before anything is written', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const storePath = join(dir, 'store.db');
  const store = ['--store', `sqlite:${storePath}`];
  const run = await runCli(['run', fixture('count-job.ts'), ...store, '--quiet'], { env: { CKPT_TEST_RECORDS: '10' } });
  assert.equal(run.code, 0, run.stderr);
  const other = join(dir, 'other.db');
  assert.equal((await runCli(['run', fixture('count-job.ts'), '--store', `sqlite:${other}`, '--quiet'], { env: { CKPT_TEST_RECORDS: '10' } })).code, 0);
  const before = readFileSync(storePath);
  for (const [out, pattern] of [
    [storePath, /is the store's own file \(store\.db\)/],
    [`${storePath}.effects`, /is the store's own file \(store\.db\.effects\)/],
    [other, /is a SQLite database \(a store\?\)/],
  ] as const) {
    const result = await runCli(['audit', 'count', ...store, '--export', 'csv', '--out', out]);
    assert.equal(result.code, 2, `${out}: ${result.stderr}`);
    assert.ok(isOneLineError(result.stderr), result.stderr);
    assert.match(result.stderr, pattern);
  }
  assert.ok(readFileSync(storePath).equals(before), 'the store file is untouched');
  const status = await runCli(['status', ...store]);
  assert.equal(status.code, 0, status.stderr);
  assert.equal((await runCli(['status', '--store', `sqlite:${other}`])).code, 0);
});

test('a device that refuses the export (--out /dev/full, a reader that went away) is one line, exit 2', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const store = await storeWithEvents(dir);
  const full = await runCli(['audit', 'audit-effects', ...store, '--export', 'csv', '--out', '/dev/full']);
  assert.equal(full.code, 2, full.stderr);
  assert.ok(isOneLineError(full.stderr), full.stderr);
  assert.match(full.stderr, /^ckpt: cannot write --out \/dev\/full: no space left on the device/);
  // A pipe whose reader is gone (it closed its end at once): the export meets EPIPE.
  const piped = spawnSync(
    'bash',
    [
      '-c',
      `"$0" "$@" --out /dev/stdout 2>"${join(dir, 'err')}" | { exec <&-; sleep 2; }; exit \${PIPESTATUS[0]}`,
      process.execPath,
      ckptBin,
      'audit',
      'audit-effects',
      ...store,
      '--export',
      'ndjson',
    ],
    { env: { ...process.env, CKPT_STORE: undefined, DATABASE_URL: undefined } },
  );
  const stderr = readFileSync(join(dir, 'err'), 'utf8');
  assert.equal(piped.status, 2, stderr);
  assert.ok(isOneLineError(stderr), stderr);
  assert.match(stderr, /^ckpt: cannot write --out \/dev\/stdout: the reader went away/);
});

test('--out - writes the export on standard output, as no --out does, not to a file named -', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const store = await storeWithEvents(dir);
  const plain = await runCli(['audit', 'audit-effects', ...store, '--export', 'ndjson'], { cwd: dir });
  const dash = await runCli(['audit', 'audit-effects', ...store, '--export', 'ndjson', '--out', '-'], { cwd: dir });
  assert.equal(dash.code, 0, dash.stderr);
  assert.ok(dash.stdout.length > 0);
  assert.equal(dash.stdout, plain.stdout);
  assert.equal(existsSync(join(dir, '-')), false, 'no file named -');
});
