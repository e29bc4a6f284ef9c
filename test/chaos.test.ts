// `ckpt chaos` on the two identity examples (with fewer kills to keep npm test short;
// the README says what 25 kills printed) and on a job written to break.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fixture, isOneLineError, repoRoot, runCli } from './helpers/cli.ts';
import { mysqlRows, mysqlSkip, sharedMysql } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

interface Report {
  kills: {
    requested: number;
    landed: number;
    sigkills: number;
    sigstops: number;
    where: { 'start-up': number; 'after-checkpoint': number; 'mid-chunk': number; 'shard-done': number };
    inEffect: number;
    progress: { min: number; max: number } | null;
    list: { place: string; aim: string; lastEvent: string | null; inEffect: string[]; progress: number }[];
  };
  rounds: { round: number; kills: number; completed: boolean; store: string }[];
  rework: { policy: string };
  shortfall: string | null;
  runs: { byOutcome: { [outcome: string]: number } };
  effects: { verifiedDone: number; verifiedNotDone: number; replayedWithoutVerify: number; replayedKeys: string[] };
  invariant: { source: string; ok: boolean; message: string };
  violations: string[];
  dir: string;
}

async function chaos(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; report: Report; stdout: string }> {
  const json = await runCli(['chaos', ...args, '--json'], { env });
  assert.ok(json.stdout.trim().startsWith('{'), `${json.stdout}\n${json.stderr}`);
  return { code: json.code, report: JSON.parse(json.stdout) as Report, stdout: json.stdout };
}

test('deprovisioning under 8 SIGKILLs: every account disabled and confirmed, none re-enabled, in-doubt disables settled by verify', {
  timeout: 120_000,
}, async () => {
  const { code, report } = await chaos([`${repoRoot}/examples/deprovision-accounts.ts`, '--kills', '8', '--seed', '11']);
  assert.deepEqual(report.violations, []);
  assert.equal(code, 0);
  assert.equal(report.kills.sigkills, 8);
  assert.ok((report.runs.byOutcome.crashed ?? 0) >= 6, JSON.stringify(report.runs));
  assert.deepEqual([report.invariant.source, report.invariant.ok], ['invariant export', true]);
  // Kills land while disables are in flight (10 ms each, 4 at a time): the next run asks the directory.
  assert.ok(report.effects.verifiedDone + report.effects.verifiedNotDone >= 1, JSON.stringify(report.effects));
  // Only the confirmation step (idempotent, no verify) is ever run again blind; a disable never.
  assert.deepEqual(
    report.effects.replayedKeys.filter((key) => !key.startsWith('confirm:')),
    [],
  );
  assert.ok(!existsSync(report.dir), 'the scratch directory is removed when nothing was violated');
});

// Asked for 25, the old schedule delivered about 10 to this short job (40 accounts, under a second
// clean) and said "no violation": its windows were two checkpoint intervals, a fifth of the job.
test('asked for 25 SIGKILLs of a short job: 25 land on a live worker, spread over the job, some right after a checkpoint, and the report says where', {
  timeout: 240_000,
}, async () => {
  const { code, report, stdout } = await chaos([`${repoRoot}/examples/deprovision-accounts.ts`, '--kills', '25', '--seed', '9', '--param', 'accounts=40']);
  assert.deepEqual(report.violations, []);
  assert.equal(code, 0);
  assert.deepEqual([report.kills.requested, report.kills.landed, report.kills.sigkills, report.shortfall], [25, 25, 25, null], JSON.stringify(report.kills));
  assert.equal(report.kills.list.length, 25);
  const where = report.kills.where;
  assert.equal(where['start-up'] + where['after-checkpoint'] + where['mid-chunk'] + where['shard-done'], 25, JSON.stringify(where));
  assert.ok(where['start-up'] >= 1 && where['after-checkpoint'] >= 1 && where['mid-chunk'] >= 1, JSON.stringify(where));
  // A kill right after a checkpoint is read from the worker's own lines: its last event is that checkpoint, or effects begun since.
  for (const kill of report.kills.list.filter((candidate) => candidate.place === 'after-checkpoint')) {
    assert.ok(kill.lastEvent === 'checkpoint' || kill.lastEvent?.startsWith('effect:'), JSON.stringify(kill));
  }
  assert.ok(report.kills.list.filter((kill) => kill.place === 'start-up').every((kill) => kill.inEffect.length === 0));
  // Disables take 10 ms, 4 at a time: some kills fall inside one.
  assert.ok(report.kills.inEffect >= 1, JSON.stringify(report.kills.list));
  assert.equal(report.kills.inEffect, report.kills.list.filter((kill) => kill.inEffect.length > 0).length);
  // Spread over the job, not all in its first chunk.
  assert.ok((report.kills.progress?.max ?? 0) >= 0.4, JSON.stringify(report.kills.progress));
  assert.ok(report.rounds.every((round) => round.completed));
  assert.equal(
    report.rounds.reduce((sum, round) => sum + round.kills, 0),
    25,
  );
  assert.deepEqual([report.invariant.source, report.invariant.ok], ['invariant export', true]);
  assert.match(stdout, /"landed":25/);
});

test('a job that finishes before the kills come (its clean run was ten times slower): run again on fresh scratch stores, at the pace learnt, until all kills landed', {
  timeout: 240_000,
}, async () => {
  const { code, report } = await chaos([fixture('chaos-slow-clean-job.ts'), '--kills', '4', '--seed', '8']);
  assert.deepEqual(report.violations, []);
  assert.deepEqual([code, report.kills.landed, report.shortfall], [0, 4, null], JSON.stringify({ kills: report.kills.where, rounds: report.rounds }));
  // The first round finishes before most kills (it may land one during start-up); the second,
  // scheduled at the pace the first one's end showed, lands the rest.
  assert.equal(report.rounds.length, 2, JSON.stringify(report.rounds));
  assert.ok(report.rounds.every((round) => round.completed));
  assert.equal(
    report.rounds.reduce((sum, round) => sum + round.kills, 0),
    4,
  );
  assert.deepEqual([report.invariant.source, report.invariant.ok], ['invariant export', true]);
});

test('access-review export under 8 SIGKILLs: exactly one evidence row per (unit, user); the text report', { timeout: 120_000 }, async () => {
  const result = await runCli(['chaos', `${repoRoot}/examples/access-review-export.ts`, '--kills', '8', '--seed', '12']);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^ckpt chaos: access-review-export .*seed 12 \(--seed 12 repeats this schedule\)\n/);
  assert.match(result.stdout, /\n {2}kills {7}8 of 8 asked landed on a live worker of a job not yet complete: 8 SIGKILLs/);
  assert.match(
    result.stdout,
    /\n {2}where {7}\d+ during start-up, \d+ right after a checkpoint \(within \d+ ms\), \d+ mid-chunk, \d+ after the shard completed; \d+ inside an effect/,
  );
  assert.match(result.stdout, /\n {2}rework {6}records each crashed run had done past its checkpoint/);
  assert.match(result.stdout, /\n {2}invariant {3}ok \(invariant export\)\n {2}result {6}no violation\n$/);
});

test('a job with a non-idempotent effect and no verify: chaos exits 5 and names the violation', { timeout: 120_000 }, async () => {
  const result = await runCli(['chaos', fixture('chaos-broken-job.ts'), '--kills', '6', '--seed', '3']);
  assert.equal(result.code, 5, result.stdout + result.stderr);
  assert.match(result.stdout, /\n {2}VIOLATION {3}invariant \(invariant export\): account-\d+ was notified [2-9] times \(exactly once expected\)\n/);
  assert.match(result.stdout, /effects {5}\d+ in doubt after a kill: 0 settled by verify .* run again without verify/);
  assert.match(result.stdout, /the scratch directory is kept/);
});

test('a short job whose only checkpoint is its last is still killed mid-run; its ctx.tx rows stay exactly once', { timeout: 120_000 }, async () => {
  const { code, report } = await chaos([fixture('chaos-short-tx-job.ts'), '--kills', '6', '--seed', '4']);
  assert.deepEqual(report.violations, []);
  assert.equal(code, 0);
  // The clean run (about a tenth of a second) checkpoints once, at its end: a kill window of two
  // checkpoint intervals would let the job finish before any kill.
  assert.equal(report.kills.sigkills, 6, JSON.stringify(report.kills));
  // Each kill past start-up crashed a run (a busy machine may finish a run faster than the clean
  // one did: the job then runs again from the start, on a fresh scratch store, for the rest).
  assert.ok(report.kills.where['mid-chunk'] + report.kills.where['after-checkpoint'] >= 3, JSON.stringify(report.kills.where));
  assert.ok((report.runs.byOutcome.crashed ?? 0) >= 6 - report.kills.where['start-up'], JSON.stringify(report.runs));
  assert.deepEqual([report.invariant.source, report.invariant.ok], ['invariant export', true]);
});

// Whether the second worker takes over depends on where the SIGSTOP lands: this job writes its
// effect journal (the `.effects` file) several times per record, so a worker frozen inside one of
// those writes holds that file's lock (SQLite has one writer) and the second one waits for it; the
// tool then wakes the first after lease + 2 s. Either way no kill may break the invariant. That a
// woken worker past its lease is fenced is proven by test/zombie.test.ts.
test('--stop-past-lease: a SIGSTOP past the lease and a second worker, and the invariant still holds', { timeout: 120_000 }, async () => {
  const { code, report } = await chaos([`${repoRoot}/examples/deprovision-accounts.ts`, '--kills', '5', '--seed', '5', '--stop-past-lease']);
  assert.deepEqual(report.violations, []);
  assert.equal(code, 0);
  assert.equal(report.kills.sigstops, 1);
  assert.equal(report.kills.sigkills, 4, JSON.stringify(report.kills));
  assert.ok(report.invariant.ok);
});

test('--check <script> instead of an invariant export: its exit code decides, its last line is the message', { timeout: 120_000 }, async () => {
  const env = { CKPT_TEST_RECORDS: '20000', CKPT_TEST_SPIN_US: '20' };
  const holds = await chaos([fixture('count-job.ts'), '--kills', '2', '--seed', '7', '--check', fixture('chaos-check.mjs')], {
    ...env,
    CHAOS_CHECK_EXPECT: '20000',
  });
  assert.equal(holds.code, 0, holds.stdout);
  assert.deepEqual([holds.report.invariant.source, holds.report.invariant.ok, holds.report.invariant.message], ['check script', true, 'counted 20000 records']);
  const fails = await runCli(['chaos', fixture('count-job.ts'), '--kills', '2', '--seed', '7', '--check', fixture('chaos-check.mjs')], {
    env: { ...env, CHAOS_CHECK_EXPECT: '20001' },
  });
  assert.equal(fails.code, 5, fails.stdout);
  assert.match(fails.stdout, /\n {2}VIOLATION {3}invariant \(check script\): .*chaos-check\.mjs exited 1: counted 20000 records, expected 20001\n/);
});

// Before, chaos ran every job on a scratch SQLite file, so a job whose ctx.tx SQL is PostgreSQL's
// or MySQL's could not be crash-tested at all ("unknown option '--store'", exit 2).
test("--store postgres://: chaos on a scratch schema (the job's search_path too) with --every/--concurrency/--lease-ms passed on; PostgreSQL-only SQL rows exactly once; the schema dropped after", {
  timeout: 240_000,
}, async () => {
  const database = await freshDatabase('ckpt_chaos_t');
  try {
    const { code, report } = await chaos([
      fixture('chaos-dialect-job.ts'),
      '--kills',
      '4',
      '--seed',
      '21',
      '--param',
      'count=800',
      '--store',
      database.url,
      '--every',
      '40',
      '--concurrency',
      '2',
      '--lease-ms',
      '20000',
    ]);
    assert.deepEqual(report.violations, []);
    assert.equal(code, 0);
    assert.equal(report.kills.landed, 4);
    assert.deepEqual([report.invariant.source, report.invariant.ok], ['invariant export', true]);
    assert.equal(report.rework.policy, 'every 40 records');
    const schemas = report.rounds.map((round) => new URL(round.store).searchParams.get('schema'));
    assert.ok(
      schemas.every((schema) => schema?.startsWith('ckpt_chaos_')),
      JSON.stringify(report.rounds),
    );
    const left = await withPool(database.url, async (pool) => (await pool.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ckpt_chaos%'")).rows);
    assert.deepEqual(left, [], "every scratch schema (the clean run's too) is dropped");
  } finally {
    await database.drop();
  }
});

test('--store mysql://: chaos on a scratch database with MySQL-only SQL, rows exactly once, the database dropped after', {
  timeout: 240_000,
  skip: await mysqlSkip(),
}, async () => {
  const availability = await sharedMysql();
  assert.ok('url' in availability);
  const { code, report } = await chaos([
    fixture('chaos-dialect-job.ts'),
    '--kills',
    '4',
    '--seed',
    '22',
    '--param',
    'count=800',
    '--store',
    availability.url,
    '--every',
    '40',
  ]);
  assert.deepEqual(report.violations, []);
  assert.equal(code, 0);
  assert.equal(report.kills.landed, 4);
  assert.deepEqual([report.invariant.source, report.invariant.ok], ['invariant export', true]);
  assert.equal(report.rework.policy, 'every 40 records');
  const names = report.rounds.map((round) => new URL(round.store).pathname.slice(1));
  assert.ok(
    names.every((name) => name.startsWith('ckpt_chaos_')),
    JSON.stringify(report.rounds),
  );
  // The clean run's database too: every one of this session's names starts ckpt_chaos_<id>_.
  const session = names[0]?.replace(/_\d+$/, '_') ?? '?';
  const left = await mysqlRows(availability.url, 'SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?', [`${session}%`]);
  assert.deepEqual(left, []);
});

test('usage errors are one line, exit 2', async () => {
  const missing = await runCli(['chaos', 'no-such-job.ts']);
  assert.equal(missing.code, 2);
  assert.ok(isOneLineError(missing.stderr), missing.stderr);
  const badKills = await runCli(['chaos', fixture('count-job.ts'), '--kills', '0']);
  assert.equal(badKills.code, 2);
  assert.match(badKills.stderr, /^ckpt: .*--kills must be a whole number/);
  const noCheck = await runCli(['chaos', fixture('count-job.ts'), '--kills', '2', '--check', 'no-such-script.mjs']);
  assert.equal(noCheck.code, 2);
  assert.match(noCheck.stderr, /^ckpt: --check script not found: no-such-script\.mjs\n$/);
});
