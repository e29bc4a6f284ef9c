// `ckpt chaos` on jobs that hold (exit 7): approved as told between runs (`--approve`, `--raise`,
// by as many chaos approvers as the job needs) with the kills landing across the holds; checked
// to stay held where expected (`--expect-hold`); a hold it was not told about, or a flag naming no
// hold, is one line and exit 2, never a pass nor a violation.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { holdViolations, parseHoldOrders } from '../src/cli/chaos-holds.ts';
import type { HoldInfo } from '../src/store/store.ts';
import { fixture, isOneLineError, repoRoot, runCli } from './helpers/cli.ts';

interface Report {
  kills: {
    requested: number;
    landed: number;
    where: { [place: string]: number };
    acrossHolds: { 'before-hold': number; 'at-hold': number; 'while-held': number; 'after-approval': number } | null;
  };
  holds: {
    told: string[];
    met: { hold: string; action: string; by: string[]; raise: number | null; limit: { used: number } | null; round: number }[];
    endedHeld: string[] | null;
    heldAgain: boolean;
  } | null;
  runs: { byOutcome: { [outcome: string]: number } };
  invariant: { source: string; ok: boolean; message: string };
  completed: boolean;
  notTold: string | null;
  violations: string[];
  dir: string;
}

const rotateKeys = join(repoRoot, 'examples', 'rotate-keys.ts');

async function chaos(args: string[]): Promise<{ code: number | null; report: Report }> {
  const json = await runCli(['chaos', ...args, '--json']);
  assert.ok(json.stdout.trim().startsWith('{'), `${json.stdout}\n${json.stderr}`);
  return { code: json.code, report: JSON.parse(json.stdout) as Report };
}

const phases = (report: Report) => Object.values(report.kills.acrossHolds ?? {}).reduce((sum, count) => sum + count, 0);

test('rotate-keys with --approve revoke-phase: the hold is passed by a chaos approver through the store, the kills land across it, the rotation completes', {
  timeout: 120_000,
}, async () => {
  const { code, report } = await chaos([rotateKeys, '--kills', '5', '--seed', '1', '--param', 'apps=12', '--approve', 'revoke-phase', '--keep']);
  try {
    assert.deepEqual(report.violations, []);
    assert.equal(code, 0);
    assert.equal(report.kills.landed, 5);
    assert.ok(report.completed);
    assert.ok(report.holds !== null);
    assert.deepEqual(report.holds.told, ['--approve revoke-phase']);
    assert.ok(report.holds.met.length >= 1);
    for (const met of report.holds.met) assert.deepEqual([met.hold, met.action, met.by], ['point:revoke-phase', 'approved', ['ckpt-chaos-1']]);
    // Every kill is placed against the holds; the rotation's work is after the approval, so kills land there.
    assert.equal(phases(report), 5, JSON.stringify(report.kills));
    assert.ok((report.kills.acrossHolds?.['after-approval'] ?? 0) >= 1, JSON.stringify(report.kills.acrossHolds));
    assert.ok((report.runs.byOutcome.held ?? 0) >= 1, JSON.stringify(report.runs));
    // The example's invariant: each app has exactly its new key live, the old one revoked.
    assert.deepEqual([report.invariant.source, report.invariant.ok], ['invariant export', true]);
    // The approval is the store's own, as `ckpt approve` records it: in the audit chain, by name and reason.
    const audit = await runCli(['audit', 'rotate-keys', '--store', `sqlite:${join(report.dir, 'store.db')}`, '--verify']);
    assert.equal(audit.code, 0, audit.stdout + audit.stderr);
    assert.match(audit.stdout, /approved.*point:revoke-phase.*ckpt-chaos-1|ckpt-chaos-1.*point:revoke-phase/);
    assert.match(audit.stdout, /ckpt chaos, seed 1, round 1: --approve revoke-phase/);
  } finally {
    rmSync(report.dir, { recursive: true, force: true });
  }
});

test('rotate-keys with --expect-hold point:revoke-phase: every round ends held there, holds again when run once more, nothing revoked; "held at … (as expected)"', {
  timeout: 120_000,
}, async () => {
  const result = await runCli(['chaos', rotateKeys, '--kills', '3', '--seed', '2', '--expect-hold', 'point:revoke-phase']);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\n {2}kills {7}3 of 3 asked landed/);
  assert.match(
    result.stdout,
    /\n {2}holds {7}approval point revoke-phase \(revoke the old key of each of 8 apps\): held \d+ times? in \d+ rounds?, as expected \(--expect-hold point:revoke-phase\)\n/,
  );
  assert.match(result.stdout, /\n {14}every round ended held at point:revoke-phase \(as expected\); run once more, it held there again\n/);
  // The invariant is told the instance is held, and checks that no key was revoked.
  assert.match(result.stdout, /\n {2}invariant {3}ok \(invariant export\)\n {2}result {6}no violation; held at point:revoke-phase \(as expected\)\n$/);
});

test('a limit that two people must raise: --raise disable=+20 raises it by two chaos approvers each time it holds; --expect-hold limit:disable ends with exactly the limit disabled', {
  timeout: 120_000,
}, async () => {
  const raised = await chaos([fixture('chaos-limited-job.ts'), '--kills', '6', '--seed', '5', '--raise', 'disable=+20']);
  assert.deepEqual(raised.report.violations, []);
  assert.equal(raised.code, 0);
  assert.equal(raised.report.kills.landed, 6);
  const met = raised.report.holds?.met ?? [];
  // 60 accounts, 20 at a time: held at 20 and at 40 started, each time raised by 20; never a 61st.
  assert.deepEqual(
    met.filter((hold) => hold.round === 1).map((hold) => [hold.hold, hold.action, hold.by, hold.raise, hold.limit?.used]),
    [
      ['limit:disable', 'approved', ['ckpt-chaos-1', 'ckpt-chaos-2'], 20, 20],
      ['limit:disable', 'approved', ['ckpt-chaos-1', 'ckpt-chaos-2'], 20, 40],
    ],
  );
  assert.deepEqual([raised.report.invariant.source, raised.report.invariant.ok], ['invariant export', true], raised.report.invariant.message);

  const expected = await chaos([fixture('chaos-limited-job.ts'), '--kills', '4', '--seed', '5', '--expect-hold', 'limit:disable']);
  assert.deepEqual(expected.report.violations, []);
  assert.equal(expected.code, 0);
  assert.equal(expected.report.kills.landed, 4);
  assert.deepEqual(expected.report.holds?.endedHeld, ['limit:disable']);
  assert.equal(expected.report.holds?.heldAgain, true);
  assert.ok(expected.report.holds?.met.every((hold) => hold.action === 'expected' && hold.limit?.used === 20));
  // The fixture's invariant, told it is held at the limit: exactly 20 accounts disabled, each once.
  assert.deepEqual([expected.report.invariant.source, expected.report.invariant.ok], ['invariant export', true], expected.report.invariant.message);
});

test('a hold chaos was not told about, a flag naming no hold, a bad hold flag: one line each, exit 2, before any kill', { timeout: 60_000 }, async () => {
  const untold = await runCli(['chaos', rotateKeys, '--kills', '3']);
  assert.equal(untold.code, 2, untold.stdout + untold.stderr);
  assert.ok(isOneLineError(untold.stderr), untold.stderr);
  assert.equal(untold.stdout, '');
  assert.match(
    untold.stderr,
    /^ckpt: .*rotate-keys\.ts: its clean run \(no kills\) holds: approval point revoke-phase \(revoke the old key of each of 8 apps\), which ckpt chaos was not told about; pass --approve revoke-phase .*, or --expect-hold point:revoke-phase /,
  );
  const wrong = await runCli(['chaos', rotateKeys, '--kills', '3', '--approve', 'revoke']);
  assert.equal(wrong.code, 2, wrong.stdout + wrong.stderr);
  assert.ok(isOneLineError(wrong.stderr), wrong.stderr);
  assert.match(
    wrong.stderr,
    /^ckpt: .*rotate-keys\.ts: --approve revoke names no hold its clean run met; it holds: approval point revoke-phase .*pass --approve revoke-phase /,
  );
  const neverHeld = await runCli(['chaos', fixture('count-job.ts'), '--kills', '2', '--expect-hold', 'point:review']);
  assert.equal(neverHeld.code, 2, neverHeld.stdout + neverHeld.stderr);
  assert.match(
    neverHeld.stderr,
    /^ckpt: --expect-hold point:review: .*count-job\.ts never held there in its clean run \(it never held\); see ckpt chaos --help\n$/,
  );
  const badRaise = await runCli(['chaos', rotateKeys, '--raise', 'disable']);
  assert.equal(badRaise.code, 2);
  assert.match(badRaise.stderr, /^ckpt: --raise must be kind=\+N with N a whole number ≥ 1, such as disable=\+500 \(got "disable"\)\n$/);
  const both = await runCli(['chaos', rotateKeys, '--approve', 'revoke-phase', '--expect-hold', 'revoke-phase']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^ckpt: point:revoke-phase is both approved and expected to hold; /);
});

// Pure logic: what a round's end says about its holds, from the store's state.
const hold = (name: string): HoldInfo => ({
  instanceId: 1,
  generation: 1,
  name,
  kind: name.startsWith('limit:') ? 'limit' : 'point',
  detail: {},
  required: 1,
  round: 1,
  heldAt: 0,
  releasedAt: null,
  approvals: [],
});

test('hold violations: a hold that moved, a job that completed past an expected hold, more effects than a limit allows', () => {
  const expect = parseHoldOrders({ expectHold: ['point:revoke-phase'] });
  const none = parseHoldOrders({});
  assert.deepEqual(holdViolations(expect, 'held', { open: [hold('point:revoke-phase')], counts: [] }, new Map()), []);
  assert.deepEqual(holdViolations(expect, 'held', { open: [hold('limit:revoke')], counts: [] }, new Map()), [
    'the hold moved: the job ended held at limit:revoke, where its clean run held at point:revoke-phase',
  ]);
  assert.deepEqual(holdViolations(expect, 'completed', { open: [], counts: [] }, new Map()), [
    'the job completed without an approval of point:revoke-phase, where its clean run held: a crash let it past the hold',
  ]);
  assert.deepEqual(holdViolations(none, 'completed', { open: [], counts: [{ kind: 'disable', used: 120, raised: 20 }] }, new Map([['disable', 100]])), []);
  assert.deepEqual(holdViolations(none, 'completed', { open: [], counts: [{ kind: 'disable', used: 121, raised: 20 }] }, new Map([['disable', 100]])), [
    'an effect past the hold: 121 disable effects started, over the limit of 120 (100 raised by 20)',
  ]);
  assert.ok(!existsSync(join(repoRoot, 'directory.log')), 'the chaos fixture keeps its directory under CKPT_CHAOS_DIR');
});
