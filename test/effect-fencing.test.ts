// Guarantee 4, fencing: effects are fenced as checkpoints are. A worker SIGSTOPped inside ctx.once's
// fn past its lease is replaced; the new worker's verify finds nothing and runs the effect; when
// the paused one wakes, its call goes out, but its completion (stale fencing token) must not
// overwrite the journal's result: the first result stays, an `effect:late-completion` event
// names the key and both runs, and `ckpt audit --verify` shows it on an intact chain.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FencedError } from '../src/errors.ts';
import { openStore } from '../src/index.ts';
import { Effects } from '../src/job/effects/effects.ts';
import type { Store } from '../src/store.ts';
import { fixture, runCli, spawnCli, tempDir } from './helpers/cli.ts';
import { sqlStores } from './helpers/sql-stores.ts';

const LEASE_MS = 1500;
const KEY = 'issue-key:0';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(20);
  }
}

for (const backend of sqlStores) {
  describe(`effect fencing: ${backend.name}`, { skip: await backend.skip() }, () => {
    test('a worker woken inside fn after another redid the effect keeps no say: first result kept, late completion recorded and audited', async () => {
      const dir = tempDir('ckpt-fence-');
      const database = await backend.database();
      cleanups.push(() => database.drop());
      const url = database.store();
      const args = ['run', fixture('fenced-effect.ts'), '--store', url, '--lease-ms', String(LEASE_MS), '--heartbeat-ms', '300', '--json'];
      const env = { FENCE_DIR: dir };

      // Without --json: its summary is printed for people (stderr) and as one JSON line (stdout).
      const paused = spawnCli(
        args.filter((arg) => arg !== '--json'),
        { env: { ...env, FENCE_HOLD: '1' } },
      );
      await until('the first worker to enter fn', () => existsSync(join(dir, 'started')));
      paused.child.kill('SIGSTOP');
      writeFileSync(join(dir, 'release'), '');
      await sleep(LEASE_MS * 1.6);

      const successor = await runCli([...args, '--wait'], { env });
      assert.equal(successor.code, 0, successor.stderr);
      paused.child.kill('SIGCONT');
      const late = await paused.done;
      assert.notEqual(late.signal, 'SIGKILL');
      assert.match(late.stdout, /"type":"summary".*"lateCompletions":1/, `its summary counts it: ${late.stdout.slice(-1500)}`);
      assert.match(late.stderr, /late {6}1 effects completed after this worker's lease was taken/, late.stderr);

      const apiLog = readFileSync(join(dir, 'api.log'), 'utf8').trim().split('\n');
      assert.equal(apiLog.length, 2, `both calls went out (the paused one was already under way): ${apiLog.join(' | ')}`);
      const appLog = readFileSync(join(dir, 'app.log'), 'utf8');

      const store: Store = await openStore(url);
      try {
        const [instance] = await store.listInstances('fenced-effect');
        assert.ok(instance);
        const entry = await store.effect({ instanceId: instance.id, generation: instance.generation }, KEY);
        const runs = await store.listRuns(instance.id);
        const events = await store.listEvents(instance.id);
        const lateEvents = events.filter((event) => event.type === 'effect:late-completion');
        assert.equal(lateEvents.length, 1, `one effect:late-completion event: ${events.map((event) => event.type).join(', ')}`);
        const [event] = lateEvents;
        assert.equal(event?.data.key, KEY);
        assert.equal(event?.data.kept, 'first');
        const successorRun = runs.find((run) => run.outcome === 'completed');
        assert.ok(successorRun, 'the successor completed the shard');
        assert.equal(event?.data.holderRunId, successorRun.id, 'it names the run that holds the shard');
        assert.notEqual(event?.data.runId, successorRun.id, 'and the late run');
        assert.equal(event?.runId, event?.data.runId);
        // The journal keeps the successor's result: the one its app record committed with.
        assert.equal(entry?.status, 'done');
        const committedKey = appLog
          .split('\n')
          .find((line) => line.includes('app ') && !line.includes(`app ${paused.child.pid} `))
          ?.split(' ')[2];
        assert.deepEqual(entry?.result, { key: committedKey }, `journal ${JSON.stringify(entry?.result)}; app log: ${appLog}`);
      } finally {
        await store.close();
      }

      const audit = await runCli(['audit', 'fenced-effect', '--store', url, '--verify']);
      assert.equal(audit.code, 0, audit.stderr);
      assert.match(audit.stdout, /chain intact/);
      assert.match(audit.stdout, /effect:late-completion.*first result kept.*issue-key:0/);
    });
  });
}

test('an intent written with a stale fencing token is refused: ctx.once throws FencedError and fn never starts', async () => {
  const dir = tempDir('ckpt-fence-');
  const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  try {
    await store.migrate();
    const instance = await store.instance('fence-unit', 'h', { params: {}, version: null });
    await store.ensureShards(instance, ['main'], { version: null });
    const stale = await store.claim(instance, 'worker-a', 1);
    assert.ok(stale);
    await sleep(20);
    const holder = await store.claim(instance, 'worker-b', 30_000);
    assert.ok(holder && holder.token !== stale.token);
    const notified: string[] = [];
    const effects = new Effects({
      store,
      scope: { instanceId: instance.id, generation: instance.generation },
      job: 'fence-unit',
      shard: 'main',
      runId: stale.runId,
      secretKey: () => Buffer.alloc(32),
      notify: (type) => notified.push(type),
      fence: { shardId: stale.shardId, token: stale.token, shard: 'main', runId: stale.runId },
    });
    let ran = false;
    await assert.rejects(
      effects.once('charge', () => {
        ran = true;
      }),
      (error: unknown) => error instanceof FencedError && /stale/.test(error.message),
    );
    assert.equal(ran, false, 'fn never started');
    assert.equal(await store.effect({ instanceId: instance.id, generation: instance.generation }, 'charge'), undefined, 'no intent written');
    assert.deepEqual(notified, [], 'no effect:start told');
  } finally {
    await store.close();
  }
});
