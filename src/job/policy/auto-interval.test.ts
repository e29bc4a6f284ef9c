import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { chooseInterval, estimateMtbf, priorMtbfMs } from './auto-interval.ts';
import { checkpointPolicy, validateCheckpointSpec } from './policy.ts';

/** Measurements as wide as real runs produce: sub-µs to minute-long checkpoints, idle to very fast records. */
const measured = fc.record({
  checkpointMs: fc.double({ min: 0, max: 120_000, noNaN: true }),
  recordsPerMs: fc.oneof(fc.constant(0), fc.double({ min: 1e-6, max: 1e4, noNaN: true })),
  mtbfMs: fc.double({ min: 1, max: 1e11, noNaN: true }),
  maxOverhead: fc.double({ min: 1e-4, max: 1, noNaN: true }),
  maxReworkMs: fc.double({ min: 1, max: 1e7, noNaN: true }),
});

const relativeSlack = 1e-9;

describe('chooseInterval (property)', () => {
  it('always respects the rework bound, in ms and in records at the measured rate', () => {
    fc.assert(
      fc.property(measured, (input) => {
        const chosen = chooseInterval(input);
        assert.ok(chosen.ms > 0, `interval ${chosen.ms} must be positive`);
        assert.ok(chosen.ms <= input.maxReworkMs, `interval ${chosen.ms} ms > bound ${input.maxReworkMs}`);
        if (chosen.records !== undefined) {
          // One record is the least a checkpoint can cover, even when it alone outlasts the bound.
          assert.ok(chosen.records <= Math.max(1, input.maxReworkMs * input.recordsPerMs), `${chosen.records} records at risk`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('respects the overhead bound whenever both bounds can hold', () => {
    fc.assert(
      fc.property(measured, (input) => {
        const chosen = chooseInterval(input);
        const bothCanHold = (input.checkpointMs * (1 - input.maxOverhead)) / input.maxOverhead <= input.maxReworkMs;
        if (bothCanHold) {
          const overhead = input.checkpointMs / (chosen.ms + input.checkpointMs || 1);
          assert.ok(overhead <= input.maxOverhead * (1 + relativeSlack), `overhead ${overhead} > ${input.maxOverhead}`);
          assert.notEqual(chosen.reason, 'rework-over-overhead');
        } else {
          // The rework bound wins, and the choice says what overhead that costs.
          assert.equal(chosen.reason, 'rework-over-overhead');
          assert.equal(chosen.ms, input.maxReworkMs);
          assert.ok(chosen.overhead > input.maxOverhead * (1 - relativeSlack));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("takes Young's √(2·C·M) when it lies within both bounds", () => {
    // Build M so that Young's interval lands at a chosen point between the two bounds.
    const inside = fc.record({
      checkpointMs: fc.double({ min: 1e-3, max: 100, noNaN: true }),
      maxOverhead: fc.double({ min: 1e-3, max: 0.5, noNaN: true }),
      maxReworkMs: fc.double({ min: 1, max: 1e7, noNaN: true }),
      recordsPerMs: fc.double({ min: 0, max: 1e4, noNaN: true }),
      at: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(inside, ({ at, ...input }) => {
        const low = Math.max(1, (input.checkpointMs * (1 - input.maxOverhead)) / input.maxOverhead);
        fc.pre(low <= input.maxReworkMs);
        const young = low + at * (input.maxReworkMs - low);
        const chosen = chooseInterval({ ...input, mtbfMs: (young * young) / (2 * input.checkpointMs) });
        assert.ok(Math.abs(chosen.ms - young) <= young * 1e-6, `${chosen.ms} vs ${young} (${chosen.reason})`);
      }),
    );
  });
});

describe('auto policy (property)', () => {
  const sample = fc.record({
    records: fc.integer({ min: 0, max: 1_000_000 }),
    workMs: fc.double({ min: 0, max: 60_000, noNaN: true }),
    checkpointMs: fc.double({ min: 0, max: 60_000, noNaN: true }),
  });
  it('is due by maxReworkMs of work, whatever it measured before', () => {
    fc.assert(
      fc.property(fc.array(sample, { maxLength: 30 }), fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 0, max: 50 }), (samples, bound, crashed) => {
        const policy = checkpointPolicy({ auto: { maxReworkMs: bound } });
        policy.useHistory({ runningMs: 3_600_000, crashed });
        for (const one of samples) policy.observe(one);
        assert.ok(policy.due(1, bound), `not due after ${bound} ms: ${policy.describe()}`);
        assert.ok(policy.interval().ms <= bound);
        assert.equal(policy.due(0, bound * 10), false, 'never due with no record to cover');
      }),
    );
  });
});

describe('estimateMtbf', () => {
  it('starts at the one-hour prior and follows the crash rate as history grows', () => {
    assert.equal(estimateMtbf(undefined), priorMtbfMs);
    assert.equal(estimateMtbf({ runningMs: 0, crashed: 0 }), priorMtbfMs);
    // 100 h of running with 400 crashes: one per 15 min, and the prior hardly matters any more.
    const estimate = estimateMtbf({ runningMs: 100 * priorMtbfMs, crashed: 400 });
    assert.ok(Math.abs(estimate - 15 * 60_000) / (15 * 60_000) < 0.01, String(estimate));
  });
  it('never grows when a crash is added (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e10, noNaN: true }), fc.integer({ min: 0, max: 1e6 }), (runningMs, crashed) => {
        assert.ok(estimateMtbf({ runningMs, crashed: crashed + 1 }) < estimateMtbf({ runningMs, crashed }));
      }),
    );
  });
});

describe('validateCheckpointSpec', () => {
  it("accepts 'auto' and its bounds, refuses nonsense with the forms it knows", () => {
    assert.equal(validateCheckpointSpec('auto'), 'auto');
    assert.deepEqual(validateCheckpointSpec({ auto: { maxReworkMs: 2000 } }), { auto: { maxReworkMs: 2000 } });
    assert.throws(() => validateCheckpointSpec({ auto: { maxOverhead: 2 } }), /maxOverhead/);
    assert.throws(() => validateCheckpointSpec({ auto: { maxRework: 1 } }), /unknown keys maxRework/);
    assert.throws(() => validateCheckpointSpec({ every: 5, everyMs: 5 }), /'auto'/);
    assert.equal(checkpointPolicy().spec, 'auto');
  });
});

describe('auto policy in words', () => {
  it('says when the rework bound won and what overhead it cost', () => {
    const policy = checkpointPolicy({ auto: { maxReworkMs: 10 } });
    policy.observe({ records: 100, workMs: 10, checkpointMs: 5 });
    assert.equal(policy.interval().reason, 'rework-over-overhead');
    assert.equal(policy.interval().ms, 10);
    assert.match(
      policy.describe(),
      /capped so a crash loses at most 10 ms of work, although checkpoints then take ~33\.33 % of the run, over the 1\.00 % target/,
    );
  });
  it("explains Young's optimum in words: the measured cost and the crashes expected", () => {
    const policy = checkpointPolicy({ auto: { mtbfMs: 3_600_000 } });
    policy.observe({ records: 1000, workMs: 100, checkpointMs: 2 });
    assert.equal(policy.interval().reason, 'young');
    assert.equal(policy.interval().records, Math.floor(Math.sqrt(2 * 2 * 3_600_000) * 10));
    assert.equal(
      policy.describe(),
      "auto: every ~37,947 records / 3.8 s (balances each checkpoint's measured cost, 2.00 ms, against the work a crash would lose, expecting a crash every 60 min (mtbfMs))",
    );
    const learned = checkpointPolicy('auto');
    learned.useHistory({ runningMs: 600_000, crashed: 2 });
    learned.observe({ records: 1000, workMs: 100, checkpointMs: 2 });
    assert.match(learned.describe(), /expecting a crash every 23 min \(2 crashes in 10 min of running, plus one assumed per hour\)/);
    assert.doesNotMatch(learned.describe(), /C |M |√/);
  });
  it('describes an interval in records without Intl (its first use costs a run ~30 ms of CPU)', (t) => {
    t.mock.method(Number.prototype, 'toLocaleString', () => {
      throw new Error('toLocaleString called');
    });
    const policy = checkpointPolicy({ auto: { mtbfMs: 3_600_000 } });
    policy.observe({ records: 1000, workMs: 100, checkpointMs: 2 });
    assert.match(policy.describe(), /^auto: every ~37,947 records \/ 3\.8 s /);
  });
});
