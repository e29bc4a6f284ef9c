// Issue 18: the effect journal's group commit keeps the guarantee. A real `ckpt run` at
// concurrency 32 (two effects a record, each through a fake API that keeps its own fsync'd log)
// is SIGKILLed at random moments (its journal writes are nearly always inside a group commit),
// ≥ 20 times on each store; then a last run completes. Afterwards: no call in the API's log
// without a durable intent first (never more calls of a key than `effect:start` events for it),
// every key called exactly once (an effect in doubt is settled by `verify`, which reads the
// API's log, and never run again blindly), every in-doubt event resolved by verify, and
// `ckpt audit --verify` finds the chain intact.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase } from './helpers/postgres.ts';

// Enough that 20 runs killed ≤ 120 ms after their first API call cannot finish the job on an idle
// machine (1,500 did: a run completed before its kill).
const RECORDS = 6000;
const KILLS = 20;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

const stores: { name: string; skip: () => Promise<string | false>; url: (dir: string) => Promise<string> }[] = [
  { name: 'SQLite', skip: async () => false, url: async (dir) => `sqlite:${join(dir, 'store.db')}` },
  {
    name: 'PostgreSQL',
    skip: async () => false,
    url: async () => {
      const database = await freshDatabase();
      cleanups.push(database.drop);
      return database.url;
    },
  },
  {
    name: 'MySQL',
    skip: mysqlSkip,
    url: async () => {
      const database = await freshMysqlDatabase();
      cleanups.push(database.drop);
      return database.url;
    },
  },
];

const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

interface Event {
  type: string;
  data: { key?: string; resolution?: string; done?: boolean };
}

for (const store of stores) {
  test(`${store.name}: ${KILLS} SIGKILLs inside group commits (concurrency 32): no call without its intent, each effect once, in doubt settled by verify, chain intact`, {
    timeout: 240_000,
    skip: await store.skip(),
  }, async (t) => {
    const dir = tempDir();
    const url = await store.url(dir);
    const apiLog = join(dir, 'api.log');
    const env = { GC_API_LOG: apiLog };
    const params = ['--param', `records=${RECORDS}`];
    const args = ['run', fixture('group-commit-effects.ts'), '--store', url, ...params, '--concurrency', '32', '--quiet'];
    let kills = 0;
    for (let attempt = 0; kills < KILLS; attempt++) {
      assert.ok(attempt < KILLS * 3, 'too many attempts');
      const { child, done } = spawnCli(args, { env });
      const ended = { now: false };
      void done.then(() => {
        ended.now = true;
      });
      // Mostly a random moment after the run began calling the API (records in flight, batches
      // under way); one kill in five during start-up or the first claims.
      const before = sizeOf(apiLog);
      if (attempt % 5 === 4) await sleep(300 + Math.random() * 600);
      else for (let waited = 0; waited < 30_000 && !ended.now && sizeOf(apiLog) <= before; waited += 2) await sleep(2);
      await sleep(Math.random() * 120);
      child.kill('SIGKILL');
      const result = await done;
      assert.equal(result.signal, 'SIGKILL', `the run ended before its kill (slow the job down): exit ${result.code} ${result.stderr}`);
      kills++;
    }
    const final = await runCli(args, { env });
    assert.equal(final.code, 0, final.stderr);

    const calls = new Map<string, number>();
    for (const line of readFileSync(apiLog, 'utf8').split('\n')) {
      if (line === '') continue;
      const key = line.split(' ')[1] as string;
      calls.set(key, (calls.get(key) ?? 0) + 1);
    }
    const listed = await runCli(['events', 'group-commit', '--store', url, ...params, '--json', '--limit', '1000000']);
    assert.equal(listed.code, 0, listed.stderr);
    const events = JSON.parse(listed.stdout) as Event[];
    const starts = new Map<string, number>();
    const settled = new Set<string>();
    const inDoubt: Event[] = [];
    for (const event of events) {
      const key = String(event.data.key);
      if (event.type === 'effect:start') starts.set(key, (starts.get(key) ?? 0) + 1);
      if (event.type === 'effect:done') settled.add(key);
      if (event.type === 'effect:in-doubt') {
        inDoubt.push(event);
        if (event.data.resolution === 'verified-done') settled.add(key);
      }
    }
    const effectKey = (name: string) => (name.startsWith('disable:') ? name : `step:main:${name.slice('notify:'.length)}:notify`);
    const twice: string[] = [];
    const unrecorded: string[] = [];
    for (let n = 0; n < RECORDS; n++) {
      for (const name of [`disable:${n}`, `notify:${n}`]) {
        const count = calls.get(name) ?? 0;
        if (count !== 1) twice.push(`${name} called ${count}×`);
        if (count > (starts.get(effectKey(name)) ?? 0)) unrecorded.push(`${name}: ${count} calls, ${starts.get(effectKey(name)) ?? 0} effect:start`);
        if (!settled.has(effectKey(name))) unrecorded.push(`${name}: never recorded done`);
      }
    }
    assert.deepEqual(unrecorded.slice(0, 5), [], `${unrecorded.length} calls without a durable intent before them, or effects never completed`);
    assert.deepEqual(twice.slice(0, 5), [], `${twice.length} effects not done exactly once`);
    assert.deepEqual(
      inDoubt.filter((event) => !String(event.data.resolution).startsWith('verified-')).map((event) => event.data),
      [],
      'every effect in doubt was settled by verify',
    );
    const audit = await runCli(['audit', 'group-commit', '--store', url, ...params, '--verify']);
    assert.equal(audit.code, 0, `${audit.stdout}${audit.stderr}`);
    assert.match(audit.stdout, /chain intact/);
    t.diagnostic(
      `${kills} SIGKILLs; ${inDoubt.length} effects in doubt (${inDoubt.filter((event) => event.data.resolution === 'verified-done').length} verified done); ${events.length} events`,
    );
  });
}
