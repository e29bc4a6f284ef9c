// Guarantee 8: errors a user can cause end in one line that says what to do, the documented exit
// code, and no stack trace; nothing already in the store is lost.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { fixture, isOneLineError, repoRoot, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip } from './helpers/mysql.ts';

const job = fixture('count-job.ts');
const env = { CKPT_TEST_RECORDS: '100' };

async function expectUserError(args: string[], exitCode: number, pattern: RegExp, cwd?: string) {
  const result = await runCli(args, { env, ...(cwd ? { cwd } : {}) });
  assert.equal(result.code, exitCode, `exit code of ckpt ${args.join(' ')}: ${result.stderr}`);
  assert.ok(isOneLineError(result.stderr), `one line, no stack:\n${result.stderr}`);
  assert.match(result.stderr, pattern);
  return result;
}

test('missing job file → exit 2', async () => {
  const dir = tempDir();
  await expectUserError(['run', join(dir, 'nope.ts'), '--store', `sqlite:${join(dir, 's.db')}`], 2, /job file not found: .*nope\.ts/);
});

test('a job file with no job export → exit 2', async () => {
  const dir = tempDir();
  await expectUserError(['run', fixture('no-job.ts'), '--store', `sqlite:${join(dir, 's.db')}`], 2, /does not default-export a job.*export default defineJob/);
});

test('a job file that does not load → exit 2', async () => {
  const dir = tempDir();
  const broken = join(dir, 'broken.ts');
  writeFileSync(broken, 'export default {{ not typescript\n');
  await expectUserError(['run', broken, '--store', `sqlite:${join(dir, 's.db')}`], 2, /cannot load job file/);
});

test('a job file outside a project that has checkpointed, or in a CommonJS package → exit 2, one line saying what to do', async () => {
  // Where a new user writes their first job: a directory of their own, not this checkout.
  const dir = tempDir();
  const jobFile = join(dir, 'first.ts');
  writeFileSync(
    jobFile,
    "import { defineJob, range } from 'checkpointed';\nexport default defineJob({ name: 'first', source: () => range(0, 3), async process() {} });\n",
  );
  const store = ['--store', `sqlite:${join(dir, 's.db')}`];
  await expectUserError(['run', jobFile, ...store], 2, /cannot find the package 'checkpointed'.*npm install/, dir);
  // `npm init -y` writes "type": "commonjs": Node then reads the job's import as a syntax error.
  writeFileSync(join(dir, 'package.json'), '{ "name": "first-jobs", "type": "commonjs" }\n');
  await expectUserError(['run', jobFile, ...store], 2, /ES module.*"type": "module"/, dir);
});

test('a param the job rejects → exit 2', async () => {
  const dir = tempDir();
  await expectUserError(['run', job, '--store', `sqlite:${join(dir, 's.db')}`, '--param', 'tag=NOT OK'], 2, /rejected its params: tag must be/);
  await expectUserError(['run', job, '--store', `sqlite:${join(dir, 's.db')}`, '--param', 'novalue'], 2, /--param must be key=value/);
});

test('unknown flags, commands and bad numbers → exit 2', async () => {
  await expectUserError(['run', job, '--frobnicate'], 2, /unknown option '--frobnicate'.*ckpt run --help/);
  await expectUserError(['launch'], 2, /unknown command 'launch'/);
  await expectUserError(['run', job, '--every', 'ten'], 2, /--every must be a whole number/);
  await expectUserError(['run'], 2, /missing required argument/);
});

test('no command: the help on stderr and exit 2; asked for, the help on stdout and exit 0', async () => {
  const bare = await runCli([], { env });
  assert.equal(bare.code, 2, bare.stderr);
  assert.match(bare.stderr, /^Usage: ckpt/);
  assert.equal(bare.stdout, '');
  for (const args of [['--help'], ['help'], ['run', '--help']]) {
    const asked = await runCli(args, { env });
    assert.equal(asked.code, 0, `ckpt ${args.join(' ')}: ${asked.stderr}`);
    assert.match(asked.stdout, /^Usage: ckpt/);
  }
});

test('a store directory that cannot be created → exit 2; a missing one is created', async () => {
  const dir = tempDir();
  const file = join(dir, 'a-file');
  writeFileSync(file, 'not a directory');
  await expectUserError(['run', job, '--store', `sqlite:${join(file, 'sub', 'store.db')}`], 2, /cannot create the directory .*a-file\/sub for the store/);

  const nested = join(dir, 'new', 'deeper', 'store.db');
  const ok = await runCli(['run', job, '--store', `sqlite:${nested}`, '--quiet'], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(existsSync(nested));

  // The default store goes to .ckpt/ under the working directory, created on first use.
  const cwd = tempDir();
  const byDefault = await runCli(['run', job, '--quiet'], { env, cwd });
  assert.equal(byDefault.code, 0, byDefault.stderr);
  assert.ok(existsSync(join(cwd, '.ckpt', 'ckpt.db')));
});

test('a store directory on a file system that refuses it (/proc) → exit 2 at once, not a spin', { timeout: 30_000 }, async (t) => {
  if (!existsSync('/proc/self')) return t.skip('no /proc on this machine');
  // mkdir in /proc answers ENOENT though /proc exists; Node's recursive mkdirSync retries that forever.
  await expectUserError(['run', job, '--store', 'sqlite:/proc/ckpt-no-such/store.db'], 2, /cannot create the directory \/proc\/ckpt-no-such for the store/);
});

test('a store path that is a directory → exit 2', async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'store.db'));
  await expectUserError(['run', job, '--store', `sqlite:${join(dir, 'store.db')}`], 2, /cannot (open|use|write) the store/);
});

test('a store file that is not a SQLite database → exit 2, file untouched', async () => {
  const dir = tempDir();
  const path = join(dir, 'notes.db');
  const text = 'these are my notes, not a database\n'.repeat(200);
  writeFileSync(path, text);
  await expectUserError(['run', job, '--store', `sqlite:${path}`], 2, /is not a checkpointed store \(not a SQLite database\)/);
  await expectUserError(['status', '--store', `sqlite:${path}`], 2, /not a SQLite database/);
  assert.equal(readFileSync(path, 'utf8'), text);
});

test('a store written by a newer schema → exit 4 naming both versions; nothing changed', async () => {
  const dir = tempDir();
  const path = join(dir, 'store.db');
  const first = await runCli(['run', job, '--store', `sqlite:${path}`, '--quiet'], { env });
  assert.equal(first.code, 0, first.stderr);
  const db = new DatabaseSync(path);
  db.exec('INSERT INTO ckpt_schema (version) VALUES (999)');
  const before = db.prepare('SELECT count(*) AS n FROM runs').get() as { n: number };
  db.close();
  await expectUserError(['run', job, '--store', `sqlite:${path}`], 4, /schema version 999, newer than version \d+ .*unsafe to continue/);
  await expectUserError(['status', '--store', `sqlite:${path}`], 4, /schema version 999/);
  const check = new DatabaseSync(path);
  assert.deepEqual(check.prepare('SELECT count(*) AS n FROM runs').get(), before);
  check.close();
});

test('a malformed store URL → exit 2', async () => {
  await expectUserError(['run', job, '--store', 'mongodb://localhost/db'], 2, /store URL .* is not understood; use sqlite:PATH/);
  await expectUserError(['status', '--store', 'mysql://localhost'], 2, /names no database/);
  await expectUserError(['status', '--store', 'sqlite:'], 2, /names no file/);
  await expectUserError(['status', '--store', 'postgres://'], 2, /not a valid PostgreSQL URL/);
  const result = await runCli(['status'], { env: { CKPT_STORE: 'bogus' } });
  assert.equal(result.code, 2);
  assert.ok(isOneLineError(result.stderr));
});

test('a store URL written twice → exit 2, and no folder named "sqlite:" is made', async () => {
  const dir = tempDir();
  await expectUserError(['run', job, '--store', 'sqlite:sqlite:tmp/x.db'], 2, /names a file that is itself a URL; did you mean "sqlite:tmp\/x\.db"\?/, dir);
  assert.equal(existsSync(join(dir, 'sqlite:')), false);
});

test('runs/events/reset of a job that never ran → exit 2', async () => {
  const dir = tempDir();
  const store = `sqlite:${join(dir, 's.db')}`;
  const ran = await runCli(['run', job, '--store', store, '--quiet'], { env });
  assert.equal(ran.code, 0, ran.stderr);
  await expectUserError(['runs', 'nothing', '--store', store], 2, /no job named nothing has run on this store/);
  await expectUserError(['reset', 'nothing', '--store', store], 2, /no job named nothing/);
});

test('status, runs, events, reset and dlq on a store path with no file → exit 2, and no file is made', async () => {
  const dir = tempDir();
  const missing = join(dir, 'typo', 'store.db');
  for (const args of [['status'], ['runs', 'count'], ['events', 'count'], ['reset', 'count'], ['dlq', 'count']]) {
    await expectUserError([...args, '--store', `sqlite:${missing}`], 2, /no store at .*typo\/store\.db \(--store\): nothing has run with it yet/);
  }
  assert.equal(existsSync(join(dir, 'typo')), false);
});

test('an NDJSON input file that is missing → exit 2 naming it; the instance stays resumable', async () => {
  const dir = tempDir();
  const jobFile = join(dir, 'ndjson-job.ts');
  writeFileSync(
    jobFile,
    `import { defineJob, ndjsonFile } from 'checkpointed';
export default defineJob({ name: 'reads', source: () => ndjsonFile(${JSON.stringify(join(dir, 'input.ndjson'))}), process() {} });
`,
  );
  // The job file lives outside the package, so it imports the package by its path.
  writeFileSync(jobFile, readFileSync(jobFile, 'utf8').replace("'checkpointed'", JSON.stringify(join(repoRoot, 'dist', 'index.js'))));
  const store = `sqlite:${join(dir, 's.db')}`;
  await expectUserError(['run', jobFile, '--store', store], 2, /input file not found: .*input\.ndjson/);
  writeFileSync(join(dir, 'input.ndjson'), '{"a":1}\n{"a":2}\n');
  const ok = await runCli(['run', jobFile, '--store', store, '--quiet'], { env });
  assert.equal(ok.code, 0, ok.stderr);
});

/** Make a store file read-only even for root (immutable), else by its mode; undefined when neither is possible. */
function makeReadOnly(path: string): (() => void) | undefined {
  if (process.getuid?.() === 0) {
    const set = spawnSync('chattr', ['+i', path]);
    if (set.status !== 0) return undefined;
    return () => void spawnSync('chattr', ['-i', path]);
  }
  chmodSync(path, 0o444);
  return () => chmodSync(path, 0o644);
}

test('a read-only store file → exit 2 with one line, for run, reset and a status that finds a crashed worker', async (t) => {
  const dir = tempDir();
  const path = join(dir, 'store.db');
  const store = ['--store', `sqlite:${path}`];
  // A worker SIGKILLed mid-run: the next status reaps it, which is a write.
  const crashed = spawnCli(['run', job, ...store, '--every', '10'], { env: { CKPT_TEST_RECORDS: '100000', CKPT_TEST_SPIN_US: '200' } });
  await waitForOutput(crashed.child, (out) => out.includes('"checkpoint"'));
  crashed.child.kill('SIGKILL');
  await crashed.done;
  const undo = makeReadOnly(path);
  if (undo === undefined) return t.skip('cannot make a file read-only here (no chattr)');
  try {
    await expectUserError(['status', ...store], 2, /read-only for this user/);
    await expectUserError(['run', job, ...store], 2, /read-only for this user/);
    await expectUserError(['reset', 'count', ...store], 2, /read-only for this user/);
  } finally {
    undo();
  }
});

test('a shard name no store can hold (a NUL, over 512 characters) → exit 2 naming it, on every store', async (t) => {
  const stores: string[] = [`sqlite:${join(tempDir(), 'store.db')}`];
  if ((await mysqlSkip()) === false) {
    const database = await freshMysqlDatabase('ckpt_shard_name');
    t.after(() => database.drop());
    stores.push(database.url);
  }
  for (const store of stores) {
    for (const [kind, pattern] of [
      ['nul', /the shard name "tenant\\u0000a" holds a NUL character/],
      ['long', /the shard name "x{40}…" is 600 characters long; a shard name has at most 512 characters/],
    ] as const) {
      const result = await runCli(['run', fixture('shard-name-job.ts'), '--store', store], { env: { SHARD_NAME: kind } });
      assert.equal(result.code, 2, `${store} ${kind}: ${result.stderr}`);
      assert.ok(isOneLineError(result.stderr), result.stderr);
      assert.match(result.stderr, pattern);
    }
  }
});

test('audit --out into a missing directory → exit 2 with one line', async () => {
  const dir = tempDir();
  const store = ['--store', `sqlite:${join(dir, 'store.db')}`];
  assert.equal((await runCli(['run', job, ...store, '--quiet'], { env })).code, 0);
  await expectUserError(
    ['audit', 'count', ...store, '--export', 'csv', '--out', join(dir, 'no', 'such', 'dir', 'x.csv')],
    2,
    /cannot write --out .*: its directory does not exist/,
  );
});

test('a side file (.effects) written by a newer schema → exit 4, as a newer store is', async () => {
  const dir = tempDir();
  const path = join(dir, 'store.db');
  assert.equal((await runCli(['run', job, '--store', `sqlite:${path}`, '--quiet'], { env })).code, 0);
  const side = new DatabaseSync(`${path}.effects`);
  side.exec('PRAGMA user_version = 99');
  side.close();
  await expectUserError(['status', '--store', `sqlite:${path}`], 4, /store\.db\.effects has schema version 99, newer than version \d+/);
  await expectUserError(['run', job, '--store', `sqlite:${path}`, '--rerun'], 4, /schema version 99/);
});

test('a lease too short to keep, or a heartbeat no shorter than the lease → exit 2 with one line', async () => {
  const store = ['--store', `sqlite:${join(tempDir(), 'store.db')}`];
  await expectUserError(['run', job, ...store, '--lease-ms', '1'], 2, /--lease-ms 1 is too short/);
  await expectUserError(
    ['run', job, ...store, '--lease-ms', '1000', '--heartbeat-ms', '5000'],
    2,
    /--heartbeat-ms 5000 is not shorter than the lease \(1000 ms\)/,
  );
  await expectUserError(['run', job, ...store, '--heartbeat-ms', '60000'], 2, /not shorter than the lease \(30000 ms, the default\)/);
  const fine = await runCli(['run', job, ...store, '--lease-ms', '3000', '--heartbeat-ms', '1000', '--quiet'], { env });
  assert.equal(fine.code, 0, fine.stderr);
});

test('an NDJSON input that is not a regular file (a FIFO, /dev/stdin, /dev/zero) → exit 2 at once, one line; not a hang, a read without end or ESPIPE', {
  timeout: 120_000,
}, async () => {
  const dir = tempDir();
  const fifo = join(dir, 'input.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  // A writer keeps the FIFO open, as a producer would: the first open does not wait, a second one would.
  const writer = spawn('sh', ['-c', `exec > ${fifo}; printf '{"amount":1}\\n'; exec sleep 60`], { stdio: 'ignore' });
  try {
    for (const input of [fifo, '/dev/stdin', '/dev/zero']) {
      const store = `sqlite:${join(dir, `${input.replaceAll('/', '_')}.db`)}`;
      const { child, done } = spawnCli(['run', fixture('ndjson-sum.ts'), '--store', store, '--param', `file=${input}`]);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const result = await done;
      clearTimeout(timer);
      assert.equal(result.signal, null, `ckpt run on ${input} had to be killed after 15 s`);
      assert.equal(result.code, 2, `exit code on ${input}: ${result.stderr}`);
      assert.ok(isOneLineError(result.stderr), `one line, no stack:\n${result.stderr}`);
      assert.match(result.stderr, /input is not a regular file \(a pipe, a FIFO or a device\): .*write the input to a file first/);
    }
  } finally {
    writer.kill('SIGKILL');
  }
});
