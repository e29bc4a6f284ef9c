// Adversarial input to `ckpt`: every user-caused error is one line starting `ckpt: `, the
// documented exit code, no stack trace, and the store and input files stay as they were.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { ckptBin, fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';

async function expectUserError(args: string[], exitCode: number, pattern: RegExp, env: NodeJS.ProcessEnv = {}) {
  const result = await runCli(args, { env });
  assert.equal(result.code, exitCode, `exit code of ckpt ${args.join(' ')}: ${result.stderr}`);
  assert.ok(isOneLineError(result.stderr), `one line, no stack:\n${result.stderr}`);
  assert.match(result.stderr, pattern);
  return result;
}

test('params() that returns no plain JSON (a BigInt, a cycle) → exit 2 saying so; nothing → no params', async () => {
  const dir = tempDir();
  const store = `sqlite:${join(dir, 's.db')}`;
  const job = fixture('params-job.ts');
  for (const kind of ['bigint', 'cycle']) {
    await expectUserError(['run', job, '--store', store], 2, /job params-job: params\(\) must return plain JSON/, { CKPT_TEST_PARAMS: kind });
  }
  const result = await runCli(['run', job, '--store', store, '--quiet'], { env: { CKPT_TEST_PARAMS: 'nothing' } });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /^completed params-job/);
});

test('--param __proto__=x is a param like any other, not silently dropped', async () => {
  const dir = tempDir();
  const out = join(dir, 'out.txt');
  const args = ['run', fixture('params-job.ts'), '--store', `sqlite:${join(dir, 's.db')}`, '--quiet', '--param', '__proto__=x', '--param', 'a=1'];
  const result = await runCli(args, { env: { CKPT_TEST_OUT: out } });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8').split('\n')[0] ?? ''), JSON.parse('{"__proto__":"x","a":"1"}'));
  // Another value of it is another instance, not "already complete".
  const other = await runCli([...args.slice(0, -3), '__proto__=y', '--param', 'a=1'], { env: { CKPT_TEST_OUT: out } });
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stderr, /^completed params-job/);
});

test('--param given twice for one key → exit 2 naming it, not the last value kept silently', async () => {
  const dir = tempDir();
  const store = `sqlite:${join(dir, 's.db')}`;
  await expectUserError(['run', fixture('params-job.ts'), '--store', store, '--param', 'a=1', '--param', 'a=2'], 2, /^ckpt: --param a is given twice/);
  // Nothing was run or stored under either value.
  const status = await runCli(['status', '--json', '--store', store]);
  assert.doesNotMatch(status.stdout, /params-job/);
});

test('a --param value that is not valid UTF-8 → exit 2: Node hands every such byte over as U+FFFD, so two values would be one instance', async () => {
  const dir = tempDir();
  const store = `sqlite:${join(dir, 's.db')}`;
  // Raw bytes reach argv only through a shell: printf writes 0xFF (and 0xFE) as they are.
  for (const octal of ['377', '376']) {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolvePromise) => {
      const child = spawn(
        '/bin/sh',
        ['-c', `exec "$0" "$@" "$(printf 'a=x\\${octal}y')"`, process.execPath, ckptBin, 'run', fixture('params-job.ts'), '--store', store, '--param'],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let text = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      child.on('close', (exit) => resolvePromise({ code: exit, stderr: text }));
    });
    assert.equal(code, 2, stderr);
    assert.ok(isOneLineError(stderr), `one line, no stack:\n${stderr}`);
    assert.match(stderr, /^ckpt: --param a: its value is not valid UTF-8/);
  }
  await expectUserError(['run', fixture('params-job.ts'), '--store', store, '--param', 'a=x\uFFFDy'], 2, /--param a: its value is not valid UTF-8/);
  const status = await runCli(['status', '--json', '--store', store]);
  assert.doesNotMatch(status.stdout, /params-job/);
});

test('a time flag beyond what a timer can wait → exit 2, not a silent 1 ms deadline', async () => {
  const job = fixture('count-job.ts');
  for (const flag of ['--drain-ms', '--lease-ms', '--every-ms']) {
    await expectUserError(['run', job, flag, '3000000000'], 2, new RegExp(`${flag} must be a whole number from 1 to 2147483647`));
  }
  await expectUserError(['run', job, '--every', '1e3'], 2, /--every must be a whole number ≥ 1/);
});

test('a truncated store file → exit 2 saying it is damaged, file untouched', async () => {
  const dir = tempDir();
  const good = join(dir, 'good.db');
  const first = await runCli(['run', fixture('count-job.ts'), '--store', `sqlite:${good}`, '--quiet', '--every', '100'], {
    env: { CKPT_TEST_RECORDS: '3000' },
  });
  assert.equal(first.code, 0, first.stderr);
  const damaged = join(dir, 'damaged.db');
  copyFileSync(good, damaged);
  truncateSync(damaged, 8192);
  const before = readFileSync(damaged);
  for (const args of [['run', fixture('count-job.ts')], ['status'], ['runs', 'count']]) {
    await expectUserError([...args, '--store', `sqlite:${damaged}`], 2, /the store .*damaged\.db is damaged \(.*malformed\); restore it from a backup/);
  }
  assert.deepEqual(readFileSync(damaged), before);
});

test('a store row whose JSON was garbled by hand (an instance\'s params, a run\'s stats) → exit 2 saying the store is damaged, not "unexpected error"', async () => {
  const dir = tempDir();
  const path = join(dir, 's.db');
  const first = await runCli(['run', fixture('count-job.ts'), '--store', `sqlite:${path}`, '--quiet'], { env: { CKPT_TEST_RECORDS: '100' } });
  assert.equal(first.code, 0, first.stderr);
  const edit = (sql: string) => {
    const db = new DatabaseSync(path);
    db.exec(sql);
    db.close();
  };
  edit("UPDATE runs SET stats = '[[[' ");
  await expectUserError(['runs', 'count', '--store', `sqlite:${path}`], 2, /the store holds a run's stats that are not JSON .*restore it from a backup/);
  // JSON, but not the object stats are: null read as one failed with 'Cannot read properties of null'.
  for (const stats of ['null', '[]', '7']) {
    edit(`UPDATE runs SET stats = '${stats}' `);
    await expectUserError(
      ['runs', 'count', '--store', `sqlite:${path}`],
      2,
      /the store holds a run's stats that are not a JSON object .*restore it from a backup/,
    );
  }
  edit("UPDATE instances SET params = '{bad' ");
  for (const args of [['status'], ['runs', 'count'], ['run', fixture('count-job.ts')]]) {
    await expectUserError([...args, '--store', `sqlite:${path}`], 2, /the store holds an instance's params that are not JSON .*restore it from a backup/);
  }
});

for (const [kind, pattern] of [
  ['object', /record at position 2 failed: \{"status":429,"reason":"quota exceeded"\}/],
  ['empty', /record at position 2 failed: TypeError at \S*throw-job\.ts:\d+:\d+;/],
  ['null', /record at position 2 failed: null;/],
] as const) {
  test(`a record that throws ${kind === 'object' ? 'a plain object' : kind === 'empty' ? 'an Error without a message' : 'null'}: the failure says what was thrown`, async () => {
    const dir = tempDir();
    const result = await runCli(['run', fixture('throw-job.ts'), '--store', `sqlite:${join(dir, 's.db')}`, '--quiet'], { env: { CKPT_TEST_THROW: kind } });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, pattern);
  });
}

test('a junk or empty $CKPT_STORE → exit 2 naming $CKPT_STORE as the source', async () => {
  for (const value of ['bogus', '', 'sqlite:']) {
    await expectUserError(['status'], 2, /^ckpt: \$CKPT_STORE: the store URL .*; or unset it to use sqlite:\.ckpt\/ckpt\.db/, { CKPT_STORE: value });
  }
  // --store wins over a junk $CKPT_STORE.
  const dir = tempDir();
  const result = await runCli(['status', '--store', `sqlite:${join(dir, 's.db')}`], { env: { CKPT_STORE: 'bogus' } });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /no store at .*s\.db \(--store\)/, 'the --store path is the one looked at');
});
