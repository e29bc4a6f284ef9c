// The audit log shows tampering: the event log is a hash chain per instance. One event row edited, one
// deleted, two swapped, the last one deleted — each by plain SQL on the store — and
// `ckpt audit --verify` exits 1 naming the first bad event; the untouched instance exits 0. With
// the secret key, an edit whose hashes are recomputed without the key is caught too.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, test } from 'node:test';
import { linkHash } from '../src/store/audit-chain.ts';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlRows, mysqlSkip } from './helpers/mysql.ts';
import { freshDatabase, withPool } from './helpers/postgres.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

/** Plain SQL on the table that holds a backend's events ($1-style placeholders are rewritten for SQLite). */
type Sql = (statement: string, values?: unknown[]) => Promise<Record<string, unknown>[]>;

interface Backend {
  store: string;
  sql: Sql;
  env?: NodeJS.ProcessEnv;
}

function sqliteBackend(env?: NodeJS.ProcessEnv): Backend {
  const path = join(tempDir(), 'store.db');
  return {
    store: `sqlite:${path}`,
    env,
    // The event log of a SQLite store lives in its side file.
    sql: async (statement, values = []) => {
      const db = new DatabaseSync(`${path}.effects`);
      try {
        const prepared = db.prepare(statement.replaceAll(/\$\d+/g, '?').replaceAll('ckpt.', ''));
        const params = values as (string | number | null)[];
        if (prepared.columns().length > 0) return prepared.all(...params) as Record<string, unknown>[];
        prepared.run(...params);
        return [];
      } finally {
        db.close();
      }
    },
  };
}

async function postgresBackend(): Promise<Backend> {
  const database = await freshDatabase();
  cleanups.push(database.drop);
  return {
    store: `${database.url}?schema=ckpt`,
    sql: (statement, values) => withPool(database.url, async (pool) => (await pool.query(statement, values)).rows),
  };
}

async function mysqlBackend(): Promise<Backend> {
  const database = await freshMysqlDatabase();
  cleanups.push(database.drop);
  return {
    store: `${database.url}?prefix=ckpt_`,
    sql: (statement, values) => mysqlRows(database.url, statement.replaceAll(/\$\d+/g, '?').replaceAll('ckpt.', 'ckpt_'), values),
  };
}

const ROUNDS = ['untouched', 'edited', 'garbled', 'deleted', 'swapped', 'truncated'] as const;

/** One instance per round (param `round`), each with its own chain of ~25 events. */
async function runRounds(backend: Backend): Promise<Map<string, { id: number; type: string }[]>> {
  const ids = new Map<string, { id: number; type: string }[]>();
  for (const round of ROUNDS) {
    const run = await runCli(['run', fixture('audit-effects.ts'), '--store', backend.store, '--param', `round=${round}`, '--quiet'], {
      env: { EFFECT_LOG: join(tempDir(), 'log'), ...backend.env },
    });
    assert.equal(run.code, 0, run.stderr);
    const listed = await runCli(['events', 'audit-effects', '--store', backend.store, '--param', `round=${round}`, '--json']);
    ids.set(
      round,
      (JSON.parse(listed.stdout) as { id: number; type: string }[]).map(({ id, type }) => ({ id, type })).sort((a, b) => a.id - b.id),
    );
  }
  return ids;
}

const verify = (backend: Backend, round: string) =>
  runCli(['audit', 'audit-effects', '--store', backend.store, '--param', `round=${round}`, '--verify'], { env: backend.env });

async function tamperAndVerify(backend: Backend): Promise<void> {
  const events = await runRounds(backend);
  const pick = (round: string, index: number) => {
    const event = events.get(round)?.[index];
    assert.ok(event, `${round} has an event ${index}`);
    return event;
  };
  const untouched = await verify(backend, 'untouched');
  assert.equal(untouched.code, 0, untouched.stderr);
  assert.match(untouched.stdout, /^audit-effects \{"round":"untouched"\}: \d+ events, chain intact/);

  // Edited: a recorded effect renamed.
  const edited = pick('edited', 5);
  await backend.sql(`UPDATE ckpt.events SET data = replace(data, 'notify', 'ignore') WHERE id = $1`, [edited.id]);
  const afterEdit = await verify(backend, 'edited');
  assert.equal(afterEdit.code, 1, afterEdit.stdout);
  assert.ok(isOneLineError(afterEdit.stderr), afterEdit.stderr);
  assert.match(afterEdit.stderr, new RegExp(`event ${edited.id} \\(${edited.type}, .*\\): its content does not match its hash`));

  // Garbled: an edit that leaves no JSON at all is named like any other, and the log stays readable.
  const garbled = pick('garbled', 5);
  await backend.sql(`UPDATE ckpt.events SET data = $1 WHERE id = $2`, ['{"key": "notify:1", <script>', garbled.id]);
  const afterGarble = await verify(backend, 'garbled');
  assert.equal(afterGarble.code, 1, afterGarble.stdout);
  assert.ok(isOneLineError(afterGarble.stderr), afterGarble.stderr);
  assert.match(afterGarble.stderr, new RegExp(`event ${garbled.id} \\(${garbled.type}, .*\\): its content does not match its hash`));
  const listed = await runCli(['events', 'audit-effects', '--store', backend.store, '--param', 'round=garbled', '--json'], { env: backend.env });
  assert.equal(listed.code, 0, listed.stderr);
  const shown = (JSON.parse(listed.stdout) as { id: number; data: unknown }[]).find((event) => event.id === garbled.id);
  assert.deepEqual(shown?.data, { unreadable: '{"key": "notify:1", <script>' }, 'the garbled text is shown as it is stored');
  for (const format of ['ndjson', 'csv']) {
    const exported = await runCli(['audit', 'audit-effects', '--store', backend.store, '--param', 'round=garbled', '--export', format], { env: backend.env });
    assert.equal(exported.code, 1, `the export is written, and the broken chain still exits 1: ${exported.stderr}`);
    assert.match(exported.stdout, /unreadable/);
  }

  // Deleted: the event after the hole is named, with the position missing.
  const deleted = pick('deleted', 7);
  const next = pick('deleted', 8);
  await backend.sql('DELETE FROM ckpt.events WHERE id = $1', [deleted.id]);
  const afterDelete = await verify(backend, 'deleted');
  assert.equal(afterDelete.code, 1, afterDelete.stdout);
  assert.match(afterDelete.stderr, new RegExp(`event ${next.id} \\(${next.type}, .*\\): the event before it \\(chain position 8\\) is missing: deleted`));

  // Swapped: two rows trade places (ids), every byte of both kept.
  const [first, second] = [pick('swapped', 3), pick('swapped', 4)];
  await backend.sql('UPDATE ckpt.events SET id = -1 WHERE id = $1', [first.id]);
  await backend.sql('UPDATE ckpt.events SET id = $1 WHERE id = $2', [first.id, second.id]);
  await backend.sql('UPDATE ckpt.events SET id = $1 WHERE id = -1', [second.id]);
  const afterSwap = await verify(backend, 'swapped');
  assert.equal(afterSwap.code, 1, afterSwap.stdout);
  assert.match(afterSwap.stderr, new RegExp(`event ${first.id} \\(${second.type}, .*chain position 5\\): it is out of order`));

  // Truncated: the last event deleted; the chain's head still says where the log ended.
  const all = events.get('truncated') ?? [];
  const [last, beforeLast] = [all.at(-1), all.at(-2)];
  assert.ok(last && beforeLast);
  await backend.sql('DELETE FROM ckpt.events WHERE id = $1', [last.id]);
  const afterTruncate = await verify(backend, 'truncated');
  assert.equal(afterTruncate.code, 1, afterTruncate.stdout);
  assert.match(afterTruncate.stderr, new RegExp(`event ${beforeLast.id} \\(${beforeLast.type}.*\\): the event after it is missing`));

  // Tampering with one instance leaves the others' chains intact.
  assert.equal((await verify(backend, 'untouched')).code, 0);
}

test('SQLite: edited, garbled, deleted, swapped and truncated event rows are each named by ckpt audit --verify (exit 1); untouched exits 0', {
  timeout: 120_000,
}, async () => {
  await tamperAndVerify(sqliteBackend());
});

test('PostgreSQL: the same five tamperings are each named (exit 1); untouched exits 0', { timeout: 120_000 }, async () => {
  await tamperAndVerify(await postgresBackend());
});

test('MySQL/MariaDB: the same five tamperings are each named (exit 1); untouched exits 0', { timeout: 120_000, skip: await mysqlSkip() }, async () => {
  await tamperAndVerify(await mysqlBackend());
});

test('with CKPT_SECRET_KEY the chain is an HMAC: an edit re-hashed without the key, or verified with another key, is caught', { timeout: 60_000 }, async () => {
  const backend = sqliteBackend({ CKPT_SECRET_KEY: 'audit-test-key-0123456789abcdef0123456789' });
  const events = await runRounds({ ...backend });
  const intact = await verify(backend, 'untouched');
  assert.equal(intact.code, 0, intact.stderr);
  assert.match(intact.stdout, /keyed with the store's secret key/);

  // Another key: nothing verifies.
  const otherKey = await runCli(['audit', 'audit-effects', '--store', backend.store, '--param', 'round=untouched', '--verify'], {
    env: { CKPT_SECRET_KEY: 'not-the-key-0123456789abcdef0123456789abc' },
  });
  assert.equal(otherKey.code, 1);
  assert.match(otherKey.stderr, /its content does not match its hash/);
  // No key at all: the keyed chain cannot be checked; say so (exit 2), do not call it broken.
  const noKey = await runCli(['audit', 'audit-effects', '--store', backend.store, '--param', 'round=untouched', '--verify']);
  assert.equal(noKey.code, 2, noKey.stderr);
  assert.match(noKey.stderr, /CKPT_SECRET_KEY/);

  // A forger without the key edits event 6 and rebuilds the chain from there with plain sha256.
  const target = events.get('edited')?.[5];
  assert.ok(target);
  const rows = await backend.sql('SELECT * FROM events WHERE instance_id = (SELECT instance_id FROM events WHERE id = $1) ORDER BY id', [target.id]);
  let prevHash = '';
  for (const row of rows) {
    if (Number(row.id) < target.id) {
      prevHash = String(row.hash);
      continue;
    }
    const data = Number(row.id) === target.id ? String(row.data).replace('notify', 'ignore') : String(row.data);
    const fields = {
      instanceId: Number(row.instance_id),
      generation: Number(row.generation),
      runId: row.run_id === null ? null : Number(row.run_id),
      shard: row.shard === null ? null : String(row.shard),
      type: String(row.type),
      at: Number(row.at),
      data,
      seq: Number(row.seq),
      prevHash,
    };
    const hash = linkHash(fields, undefined);
    await backend.sql('UPDATE events SET data = $1, prev_hash = $2, hash = $3, keyed = 0 WHERE id = $4', [data, prevHash, hash, Number(row.id)]);
    await backend.sql('UPDATE chain_heads SET hash = $1 WHERE instance_id = $2', [hash, Number(row.instance_id)]);
    prevHash = hash;
  }
  const forged = await verify(backend, 'edited');
  assert.equal(forged.code, 1, forged.stdout);
  assert.match(forged.stderr, new RegExp(`event ${target.id} .*not keyed although the events before it are`));
});
