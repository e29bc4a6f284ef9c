// Issue 21, must-show 1: a deprovisioning of 1,000 accounts with `disable ≤ 100`, SIGKILLed ≥ 20
// times at random moments (on SQLite one worker at a time, on PostgreSQL four at once). The fake
// directory's own fsync'd log shows exactly 100 disables (never 101) when the instance is held;
// `ckpt status` says held, which limit, how many, and what to run; one `ckpt approve` of the two
// the job requires releases nothing; the second does; the job completes with every account
// disabled exactly once; `ckpt audit --verify` finds the chain intact (HMAC-keyed) and lists
// the hold and both approvals; the dashboard, in a real browser, shows the instance held.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromiumPath, launchChromium } from './helpers/chromium.ts';
import { type CliResult, fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';
import { freshDatabase } from './helpers/postgres.ts';

const ACCOUNTS = 1000;
const LIMIT = 100;
const KILLS = 20;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

/** The directory's own record: how many times each account was disabled. */
function disables(log: string): Map<number, number> {
  const counts = new Map<number, number>();
  if (!existsSync(log)) return counts;
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line.startsWith('disable ')) continue;
    const account = Number(line.split(' ')[1]);
    counts.set(account, (counts.get(account) ?? 0) + 1);
  }
  return counts;
}
const total = (counts: Map<number, number>) => [...counts.values()].reduce((sum, n) => sum + n, 0);

const stores = [
  { name: 'SQLite', workers: 1, url: async (dir: string) => `sqlite:${join(dir, 'store.db')}` },
  {
    name: 'PostgreSQL',
    workers: 4,
    url: async () => {
      const database = await freshDatabase();
      cleanups.push(database.drop);
      return database.url;
    },
  },
];

for (const store of stores) {
  test(`${store.name}, ${store.workers} worker(s): ${KILLS} SIGKILLs, exactly ${LIMIT} disables when held, two approvals release it, the job completes`, {
    timeout: 300_000,
  }, async (t) => {
    const dir = tempDir('ckpt-guard-');
    const url = await store.url(dir);
    const log = join(dir, 'directory.log');
    const env = { DIR_API_LOG: log, DIR_API_DELAY_MS: '60', CKPT_SECRET_KEY: 'guard-test-key-0123456789abcdef0123456789' };
    const params = ['--param', `accounts=${ACCOUNTS}`];
    const runArgs = ['run', fixture('deprovision-limited.ts'), '--store', url, ...params, '--quiet', '--wait', '--lease-ms', '3000'];
    const cli = (args: string[]) => runCli([...args, '--store', url, ...params], { env });

    /**
     * The fleet, under fire: `store.workers` workers run; at a random moment after the directory's
     * log last grew, one of them (at random) is SIGKILLed and a new one takes its place (the
     * others reap its lease and may take its shard). Until a worker ends by itself with `exit`
     * (then the others are let end) or `killsWanted` is reached (then the live ones are killed
     * too, at one more random moment, so that the rest is done by fast runs, not at the pace
     * that gives kills time to land). Answers every worker's end that was not a kill.
     */
    let kills = 0;
    const underFire = async (exit: number, killsWanted: number): Promise<CliResult[]> => {
      const live = new Set<ReturnType<typeof spawnCli>>();
      const ends: CliResult[] = [];
      const start = () => {
        const worker = spawnCli(runArgs, { env });
        live.add(worker);
        void worker.done.then((result) => {
          live.delete(worker);
          if (result.signal !== 'SIGKILL') ends.push(result);
        });
      };
      for (let i = 0; i < store.workers; i++) start();
      while (kills < killsWanted && !ends.some((result) => result.code === exit)) {
        const other = ends.find((result) => result.code !== exit);
        assert.equal(other, undefined, `a worker ended otherwise: exit ${other?.code} ${other?.stderr}`);
        const before = sizeOf(log);
        for (let waited = 0; waited < 30_000 && sizeOf(log) <= before && !ends.some((result) => result.code === exit); waited += 5) await sleep(5);
        if (ends.some((result) => result.code === exit)) break;
        await sleep(50 + Math.random() * 400);
        const victims = [...live];
        const victim = victims[Math.floor(Math.random() * victims.length)];
        if (victim === undefined) continue;
        victim.child.kill('SIGKILL');
        await victim.done;
        kills++;
        if (process.env.GUARD_TEST_TRACE) console.error(`kill ${kills}: ${total(disables(log))} disables`);
        start();
      }
      const last = [...live];
      if (kills >= killsWanted) {
        await sleep(Math.random() * 300);
        for (const worker of last) worker.child.kill('SIGKILL');
      }
      for (const result of await Promise.all(last.map((worker) => worker.done))) if (result.signal === 'SIGKILL') kills++;
      return ends;
    };

    // Until held: kill, resume, kill… every run's count is the store's, never from zero.
    const ends = await underFire(7, Number.POSITIVE_INFINITY);
    assert.ok(total(disables(log)) <= LIMIT, `${total(disables(log))} disables before the hold: past the limit`);
    const held = ends.find((result) => result.code === 7);
    assert.ok(held !== undefined, 'held');
    assert.deepEqual(
      ends.filter((result) => result.code !== 7).map((result) => `exit ${result.code}: ${result.stderr}`),
      [],
      'every worker that was not killed ended held',
    );
    const killedBeforeHold = kills;
    assert.match(held.stderr, /held: the limit on disable effects is reached \(100 of 100 started\)/);
    assert.match(
      held.stderr,
      /2 approvals needed \(0 given\); approve with: ckpt approve deprovision --param accounts=1000 --raise disable=\+N --by NAME --reason TEXT/,
    );
    const atHold = disables(log);
    assert.equal(total(atHold), LIMIT, 'the directory saw exactly 100 disables');
    assert.equal(atHold.size, LIMIT, 'of 100 different accounts');

    // Held: a run claims nothing and says so; the directory sees nothing more.
    const again = await runCli(runArgs, { env });
    assert.equal(again.code, 7, again.stderr);
    assert.equal(total(disables(log)), LIMIT);
    const status = await runCli(['status', '--store', url], { env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /deprovision\s+\{"accounts":1000\}\s+1\s+held\b/);
    assert.match(
      status.stdout,
      /held: the limit on disable effects is reached \(100 of 100 started\); 2 approvals needed \(0 given\); approve with: ckpt approve deprovision/,
    );
    const runs = await cli(['runs', 'deprovision']);
    assert.match(runs.stdout, /\bheld\b/);
    // The dashboard says so too, in a real browser.
    if (existsSync(chromiumPath)) {
      const dashboard = spawnCli(['dashboard', '--store', url, '--port', '0'], { env });
      const page = (/on (http:\/\/\S+?)\/ /.exec(await waitForOutput(dashboard.child, (out) => / for /.test(out))) as RegExpExecArray)[1] as string;
      const chromium = await launchChromium('ckpt-chromium-');
      try {
        const tab = await chromium.context.newPage();
        tab.setDefaultTimeout(30_000);
        await tab.goto(`${page}/`);
        await tab.locator('tr[data-instance][data-state="held"]').waitFor();
        const note = (await tab.locator('tr[data-hold-of]').first().textContent()) ?? '';
        assert.match(
          note,
          /held: the limit on disable effects is reached \(100 of 100 started\); 2 approvals needed \(0 given\); approve with: ckpt approve deprovision/,
        );
      } finally {
        await chromium.close();
        dashboard.child.kill('SIGTERM');
        await dashboard.done;
      }
    } else t.diagnostic(`no Chromium at ${chromiumPath}: the dashboard's part was not checked`);

    // One approval of the two required releases nothing; the same person twice is refused.
    const first = await cli(['approve', 'deprovision', '--raise', 'disable=+900', '--by', 'alice', '--reason', 'list checked against HR']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /approval by alice recorded .*still held: .*2 approvals needed \(1 given: alice\)/);
    const twice = await cli(['approve', 'deprovision', '--raise', 'disable=+900', '--by', 'alice', '--reason', 'again']);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /^ckpt: alice already approved limit:disable/);
    const stillHeld = await runCli(runArgs, { env });
    assert.equal(stillHeld.code, 7, 'one approval of two is not enough');
    assert.equal(total(disables(log)), LIMIT);
    const second = await cli(['approve', 'deprovision', '--raise', 'disable=+900', '--by', 'bob', '--reason', 'second pair of eyes']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /released limit:disable of deprovision \{"accounts":1000\}: the limit on disable raised by 900, approved by alice, bob/);

    // The rest, under more kills (at least 5, and 20 in all), then runs that complete.
    const rest = await underFire(0, Math.max(KILLS, kills + 5));
    assert.deepEqual(
      rest.filter((result) => result.code !== 0).map((result) => `${result.code} ${result.stderr}`),
      [],
      'no worker failed',
    );
    // The rest at the directory's full speed: 900 calls at 60 ms would take half a minute.
    const finals = await Promise.all(Array.from({ length: store.workers }, () => runCli(runArgs, { env: { ...env, DIR_API_DELAY_MS: '1' } })));
    for (const final of finals) assert.equal(final.code, 0, final.stderr);
    assert.ok(kills >= KILLS, `only ${kills} kills landed`);

    const done = disables(log);
    assert.equal(done.size, ACCOUNTS, 'every account disabled');
    assert.deepEqual([...done].filter(([, count]) => count !== 1).slice(0, 5), [], 'each exactly once (in doubt settled by verify)');

    const audit = await cli(['audit', 'deprovision', '--verify']);
    assert.equal(audit.code, 0, `${audit.stdout}${audit.stderr}`);
    assert.match(audit.stdout, /chain intact; keyed with the store's secret key/);
    assert.match(audit.stdout, /guard:held.*held at limit:disable \(round 1\): 100 of 100 disable effects started; 2 approval\(s\) needed/);
    assert.match(audit.stdout, /guard:approved.*approved limit:disable \(round 1\) by alice \(OS user \w+\), raise \+900: "list checked against HR"; 1 of 2/);
    assert.match(audit.stdout, /guard:approved.*approved limit:disable \(round 1\) by bob \(OS user \w+\), raise \+900: "second pair of eyes"; 2 of 2/);
    assert.match(audit.stdout, /guard:released.*released limit:disable \(round 1\), limit raised by 900; approved by alice, bob/);
    t.diagnostic(`${kills} SIGKILLs (${killedBeforeHold} before the hold); ${total(done)} disables in the directory's log`);
  });
}
