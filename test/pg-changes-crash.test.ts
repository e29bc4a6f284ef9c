// pgChanges under SIGKILL: a real `ckpt run --follow` child follows a table's changes on a
// PostgreSQL of this file's own (wal_level = logical) while a writer keeps inserting, updating and
// deleting rows, and is SIGKILLed until ≥ 20 kills landed mid-run (after the follower applied a
// change; one attempt in four kills at a random moment of start-up). Afterwards a last follower
// catches up: every change the WAL holds (read back through a second slot created at the same moment) is
// applied exactly once through ctx.tx, its external effect ran exactly once (the journal), the
// store's mirror equals the table, and a sampler running throughout never found the slot
// confirmed past the shard's newest checkpoint.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode } from '../src/errors.ts';
import { pgChanges } from '../src/source/stream/pg-changes.ts';
import { compareLsn } from '../src/source/stream/pgoutput.ts';
import { fixture, spawnCli, tempDir } from './helpers/cli.ts';
import { logicalPostgresPerFile } from './helpers/logical-postgres.ts';

const KILLS = 20;
const pg = logicalPostgresPerFile(4);
const { skip } = pg;

function sizeOf(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

function storeRows<T>(path: string, sql: string): T[] {
  const store = new DatabaseSync(path, { readOnly: true, timeout: 5000 });
  try {
    return store.prepare(sql).all() as T[];
  } catch (error) {
    // Before the first run made the store's tables.
    if (/no such table: checkpoints/.test((error as Error).message)) return [];
    throw error;
  } finally {
    store.close();
  }
}

/** Random transactions of 1–4 statements on `items` until stopped, 10–30 ms apart; ids 1..200, so updates and deletes find rows. */
function startWriter(): { stop(): Promise<number> } {
  let running = true;
  let transactions = 0;
  const done = (async () => {
    while (running) {
      const client = await pg.db.connect();
      try {
        await client.query('BEGIN');
        for (let i = 1 + Math.floor(Math.random() * 4); i > 0; i--) {
          const id = 1 + Math.floor(Math.random() * 200);
          const v = Math.floor(Math.random() * 1e6);
          const pick = Math.random();
          if (pick < 0.5) await client.query('INSERT INTO items (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = $2', [id, v]);
          else if (pick < 0.8) await client.query('UPDATE items SET v = $2 WHERE id = $1', [id, v]);
          else await client.query('DELETE FROM items WHERE id = $1', [id]);
        }
        await client.query('COMMIT');
        transactions++;
      } finally {
        client.release();
      }
      // 10–30 ms apart (it was 0–10): a backlog at every follower's start and twice the 500 changes
      // asked for below, but fewer for each peek to decode again from the slot's confirmed point
      // (which made a follower's start take seconds) and for the last follower to catch up on.
      await sleep(10 + Math.random() * 20);
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return transactions;
    },
  };
}

test(`pgChanges followed under ${KILLS} SIGKILLs while a writer inserts, updates and deletes: every change applied and its effect run exactly once, the slot never confirmed past the checkpoint`, {
  skip,
  timeout: 240_000,
}, async (t) => {
  await pg.db.query(
    'CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL); CREATE TABLE effects (key text NOT NULL); CREATE PUBLICATION items_pub FOR TABLE items',
  );
  // Two slots at the same point of the WAL, before any write: the job's, and one only read at the end.
  const created = await pg.db.query("SELECT lsn::text FROM pg_create_logical_replication_slot('job_slot', 'pgoutput')");
  await pg.db.query("SELECT pg_create_logical_replication_slot('ref_slot', 'pgoutput')");
  const start = String(created.rows[0]?.lsn);

  const dir = tempDir('ckpt-pgchanges-crash-');
  const path = join(dir, 'store.db');
  const init = new DatabaseSync(path);
  init.exec('PRAGMA journal_mode = WAL; CREATE TABLE applied (key TEXT PRIMARY KEY); CREATE TABLE mirror (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)');
  init.close();
  const sideFile = join(dir, 'done.txt');
  // Idle marks every 4 kB: the effects table's writes (not published) between the writer's make
  // some, so checkpoints at idle marks and the slot moved to them are killed too.
  const env = { PGCHANGES_URL: pg.server.url, CKPT_TEST_SPIN_US: '1000', CKPT_TEST_OUT: sideFile, PGCHANGES_IDLE_BYTES: '4096' };
  const args = ['run', fixture('pg-changes-rows.ts'), '--store', `sqlite:${path}`, '--param', 'slot=job_slot', '--param', 'publication=items_pub'];
  const follow = [...args, '--follow', '--every-ms', '200', '--quiet'];

  // The slot's confirmed LSN first, then the newest checkpoint: checkpoints only move forward, so
  // a confirmed LSN past the later reading was past the checkpoint when it was read.
  const sampler = { running: true, samples: 0, moved: 0, ahead: [] as string[], checkpoints: new Set<string>() };
  const sampling = (async () => {
    while (sampler.running) {
      const confirmed = String(
        (await pg.db.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'job_slot'")).rows[0]?.lsn,
      );
      const [newest] = storeRows<{ position: string | null }>(path, 'SELECT position FROM checkpoints WHERE position IS NOT NULL ORDER BY seq DESC LIMIT 1');
      const checkpoint =
        newest?.position === undefined || newest.position === null ? undefined : (JSON.parse(newest.position) as { lsn: string; seq?: number });
      sampler.samples++;
      if (checkpoint !== undefined && checkpoint.seq === undefined) sampler.checkpoints.add(checkpoint.lsn);
      if (confirmed !== start) sampler.moved++;
      if (checkpoint === undefined ? confirmed !== start : compareLsn(confirmed, checkpoint.lsn) > 0) {
        if (sampler.ahead.length < 5) sampler.ahead.push(`${confirmed} > ${checkpoint?.lsn ?? 'no checkpoint'}`);
      }
      await sleep(25);
    }
  })().catch((error: unknown) => {
    sampler.running = false;
    throw error;
  });

  const writer = startWriter();
  t.after(async () => {
    sampler.running = false;
    await writer.stop().catch(() => undefined);
    await sampling.catch(() => undefined);
  });
  let kills = 0;
  let midRun = 0;
  const loopStart = Date.now();
  for (let attempt = 0; midRun < KILLS; attempt++) {
    assert.ok(attempt < 100, 'too many attempts');
    const { child, done } = spawnCli(follow, { env });
    const before = sizeOf(sideFile);
    // One kill in four from the start (start-up, the slot's first peek); the rest once this follower applied something.
    if (attempt % 4 === 3) await sleep(Math.random() * 1500);
    else for (let waited = 0; waited < 30_000 && sizeOf(sideFile) <= before && child.exitCode === null; waited += 5) await sleep(5);
    await sleep(Math.random() * 250);
    child.kill('SIGKILL');
    const result = await done;
    assert.equal(result.signal, 'SIGKILL', `the follower ended before its kill: exit ${result.code} ${result.stderr}`);
    kills++;
    if (sizeOf(sideFile) > before) midRun++;
  }
  const transactions = await writer.stop();
  const loopMs = Date.now() - loopStart;

  // What the WAL holds: the second slot, read whole.
  const reference: string[] = [];
  for await (const item of pgChanges({ connection: pg.server.url, slot: 'ref_slot', publication: 'items_pub' }).read(undefined, {
    signal: new AbortController().signal,
  })) {
    reference.push(`${item.record.lsn}:${item.record.seq}`);
  }
  assert.ok(reference.length > 500, `the writer made ${reference.length} changes`);

  const last = spawnCli(follow, { env });
  const deadline = Date.now() + 120_000;
  while ((storeRows<{ n: number }>(path, 'SELECT count(*) AS n FROM applied')[0]?.n ?? 0) < reference.length) {
    assert.ok(
      Date.now() < deadline && last.child.exitCode === null,
      `the last follower did not catch up: ${(await Promise.race([last.done, sleep(10)]))?.stderr ?? ''}`,
    );
    await sleep(100);
  }
  const catchUpMs = Date.now() - loopStart - loopMs;
  await sleep(800); // a quiet checkpoint, and the slot moved after it
  last.child.kill('SIGTERM');
  const ended = await last.done;
  assert.equal(ended.code, ExitCode.interrupted, ended.stderr);
  sampler.running = false;
  await sampling;

  const applied = storeRows<{ key: string }>(path, 'SELECT key FROM applied').map((row) => row.key);
  assert.deepEqual(new Set(applied), new Set(reference), 'every change applied, none other');
  assert.equal(applied.length, reference.length);
  const effects = (await pg.db.query('SELECT key, count(*)::int AS n FROM effects GROUP BY key')).rows as { key: string; n: number }[];
  assert.deepEqual(
    effects.filter((row) => row.n !== 1),
    [],
    'each effect ran once',
  );
  assert.deepEqual(new Set(effects.map((row) => row.key)), new Set(reference), 'every change’s effect ran');
  const items = (await pg.db.query('SELECT id, v FROM items ORDER BY id')).rows.map((row) => ({ id: Number(row.id), v: Number(row.v) }));
  assert.deepEqual(
    storeRows<{ id: number; v: number }>(path, 'SELECT id, v FROM mirror ORDER BY id').map((row) => ({ ...row })),
    items,
    'the mirror equals the table',
  );
  assert.deepEqual(sampler.ahead, [], 'the slot confirmed past the newest checkpoint');
  assert.ok(sampler.samples > 50 && sampler.moved > 0, `${sampler.samples} samples, ${sampler.moved} with the slot moved`);
  // Checkpoints the sampler saw at an LSN no change of ours ends at: idle marks.
  const changeLsns = new Set(reference.map((key) => key.split(':')[0]));
  const idleMarks = [...sampler.checkpoints].filter((lsn) => !changeLsns.has(lsn)).length;
  const slot = (await pg.db.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'job_slot'")).rows[0];
  const [newest] = storeRows<{ position: string }>(path, 'SELECT position FROM checkpoints WHERE position IS NOT NULL ORDER BY seq DESC LIMIT 1');
  assert.equal(String(slot?.lsn), (JSON.parse(newest?.position as string) as { lsn: string }).lsn, 'at the end the slot stands at the last checkpoint');
  t.diagnostic(
    `${kills} SIGKILLs (${midRun} mid-run) in ${(loopMs / 1000).toFixed(1)} s, ${transactions} writer transactions, ${reference.length} changes (the last follower caught up in ${(catchUpMs / 1000).toFixed(1)} s), ${sampler.samples} samples of the slot, ${idleMarks} checkpoints at idle marks`,
  );
});
