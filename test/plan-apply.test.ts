// Issue 21, must-show 2: plan, then apply exactly the plan. `ckpt plan` on a deprovisioning of
// 1,000 accounts (examples/deprovision-accounts.ts) calls the fake directory 0 times and reports
// 1,000 disables; an apply of the unapproved plan is refused; after 20 new accounts appear,
// `ckpt apply` — SIGKILLed ≥ 10 times at random moments while it calls the directory — performs
// exactly the 1,000 planned disables (each once: the directory's own log) and holds the 20, which
// `effect:held` events name; the chain stays intact.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { freshDatabase } from './helpers/postgres.ts';

const ACCOUNTS = 1000;
const NEW = 20;
const KILLS = 10;
const job = join(repoRoot, 'examples', 'deprovision-accounts.ts');

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/** What the fake directory's own log says (its `calls` table), read beside the running job. */
function directoryCalls(path: string, op?: string): { op: string; account: string }[] {
  const db = new DatabaseSync(path);
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'").get() !== undefined;
    if (!known) return [];
    const rows = db.prepare('SELECT op, account FROM calls ORDER BY seq').all() as { op: string; account: string }[];
    return op === undefined ? rows : rows.filter((row) => row.op === op);
  } finally {
    db.close();
  }
}

/** How many calls the fake directory logged: polled every 10 ms, so a count, not every row. */
function directoryCallCount(path: string): number {
  const db = new DatabaseSync(path);
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'").get() !== undefined;
    return known ? Number((db.prepare('SELECT count(*) AS n FROM calls').get() as { n: number }).n) : 0;
  } finally {
    db.close();
  }
}

const stores: { name: string; url: (dir: string) => Promise<string> }[] = [
  { name: 'SQLite', url: async (dir) => `sqlite:${join(dir, 'store.db')}` },
  {
    name: 'PostgreSQL',
    url: async () => {
      const database = await freshDatabase();
      cleanups.push(database.drop);
      return database.url;
    },
  },
];

// Both stores at once: each has its own store and directory, and a kill comes ≤ 150 ms after the
// directory's log grew, so a loaded machine only leaves each apply fewer disables done per run.
describe('each store', { concurrency: 2 }, () => {
  for (const store of stores) {
    test(`${store.name}: plan calls the directory 0 times; apply under ${KILLS} SIGKILLs performs exactly the ${ACCOUNTS} planned disables and holds the ${NEW} new accounts`, {
      timeout: 300_000,
    }, async (t) => {
      const dir = tempDir();
      const url = await store.url(dir);
      const directory = join(dir, 'directory.db');
      const params = ['--param', `accounts=${ACCOUNTS}`, '--param', `directory=${directory}`, '--param', 'latencyMs=10'];

      const planned = await runCli(['plan', job, '--store', url, ...params, '--json']);
      assert.equal(planned.code, 0, planned.stderr);
      const plan = JSON.parse(planned.stdout) as { id: string; counts: { [kind: string]: number }; effects: { key: string }[]; approvalsRequired: number };
      assert.equal(plan.counts.disable, ACCOUNTS, 'the plan reports 1,000 disables');
      assert.deepEqual(directoryCalls(directory), [], 'the plan run called the directory 0 times');
      const shown = await runCli(['plan', '--show', plan.id, '--store', url]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /disable\s+1,000\s+target: directory/);

      const refused = await runCli(['apply', plan.id, '--store', url, '--quiet']);
      assert.equal(refused.code, 4, 'an apply of a plan that lacks its approval is refused');
      assert.match(refused.stderr, /needs 1 approvals .* has 0/);
      assert.deepEqual(directoryCalls(directory), []);
      const approved = await runCli(['plan', '--approve', plan.id, '--by', 'ana', '--reason', 'reviewed the 1,000', '--store', url]);
      assert.equal(approved.code, 0, approved.stderr);

      // The world changes after the review: 20 accounts appear (sorted first, among the planned ones' shard).
      const db = new DatabaseSync(directory);
      for (let n = 1; n <= NEW; n++) db.prepare("INSERT INTO accounts (id, status) VALUES (?, 'active')").run(`new-${String(n).padStart(3, '0')}`);
      db.close();

      const args = ['apply', plan.id, '--store', url, '--quiet'];
      let kills = 0;
      for (let attempt = 0; kills < KILLS; attempt++) {
        assert.ok(attempt < KILLS * 3, 'too many attempts');
        const before = directoryCallCount(directory);
        const { child, done } = spawnCli(args);
        const ended = { now: false };
        void done.then(() => {
          ended.now = true;
        });
        for (let waited = 0; waited < 30_000 && !ended.now && directoryCallCount(directory) <= before; waited += 10) await sleep(10);
        // At most 150 ms more (the apply calls about 400 a second at 10 ms each, 4 at once), so ten
        // kills land well before the 1,000 are done.
        await sleep(Math.random() * 150);
        child.kill('SIGKILL');
        const result = await done;
        assert.equal(result.signal, 'SIGKILL', `the apply ended before its kill: exit ${result.code} ${result.stderr}`);
        kills++;
      }
      const final = await runCli(args);
      assert.equal(final.code, 7, `the apply ends held (exit 7): ${final.stderr}`);
      assert.match(final.stderr, new RegExp(`held ${NEW} effects that plan ${plan.id} did not contain`));

      const disables = new Map<string, number>();
      for (const call of directoryCalls(directory, 'disable')) disables.set(call.account, (disables.get(call.account) ?? 0) + 1);
      const plannedKeys = new Set(plan.effects.map((effect) => effect.key));
      const unplanned = [...disables.keys()].filter((account) => !plannedKeys.has(`disable:${account}`));
      assert.deepEqual(unplanned, [], 'no disable outside the plan reached the directory');
      assert.equal(disables.size, ACCOUNTS, 'every planned disable reached the directory');
      const listed = await runCli(['events', 'deprovision-accounts', '--store', url, ...params, '--json', '--limit', '1000000']);
      assert.equal(listed.code, 0, listed.stderr);
      const events = JSON.parse(listed.stdout) as { type: string; data: { key?: string; plan?: string; by?: string } }[];
      const twice = [...disables].filter(([, count]) => count !== 1);
      // The directory logs a disable in the transaction that performs it, so its log counts acts: a
      // second one is a replay, whatever `verify` said. What the journal recorded of it, to read why:
      const journal = (account: string) =>
        events.filter((event) => event.data.key === `disable:${account}`).map((event) => `${event.type} ${JSON.stringify(event.data)}`);
      assert.deepEqual(
        twice.slice(0, 5),
        [],
        `${twice.length} accounts disabled more than once; the journal of the first: ${journal(twice[0]?.[0] ?? '').join(' | ')}`,
      );
      const held = new Set(events.filter((event) => event.type === 'effect:held').map((event) => String(event.data.key)));
      assert.deepEqual(
        [...held].sort(),
        Array.from({ length: NEW }, (_, i) => `disable:new-${String(i + 1).padStart(3, '0')}`),
        'effect:held events name exactly the 20 new accounts',
      );
      assert.ok(events.some((event) => event.type === 'plan:approved' && event.data.by === 'ana'));
      const audit = await runCli(['audit', 'deprovision-accounts', '--store', url, ...params, '--verify']);
      assert.equal(audit.code, 0, `${audit.stdout}${audit.stderr}`);
      const inDoubt = events.filter((event) => event.type === 'effect:in-doubt').length;
      t.diagnostic(`${kills} SIGKILLs during apply; ${inDoubt} effects in doubt, settled by verify; ${held.size} held`);
    });
  }
});
