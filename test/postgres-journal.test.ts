// The PostgreSQL journal's usual batch is one prepared statement, and after a few runs on a
// connection the server runs it with its generic plan. That plan must not read the instance's
// effect entries to write a batch: the statement's cost has to stay the batch's, not grow with
// every effect the instance has recorded (a deprovisioning of 100,000 accounts records 200,000).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { PostgresStore } from '../src/postgres.ts';
import { readChain, verifyChain } from '../src/store/audit-chain.ts';
import { createPgPool, type PgPool } from '../src/store/postgres/postgres-driver.ts';
import type { JournalWrite } from '../src/store/store.ts';
import { freshDatabase } from './helpers/postgres.ts';

const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (value: unknown) => unknown };

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

/** The rows every scan of `effects` produced or filtered out (the writes' own nodes aside). */
function effectRowsRead(node: PlanNode): number {
  const own =
    node['Relation Name'] === 'effects' && node['Node Type'].endsWith('Scan')
      ? ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * (node['Actual Loops'] ?? 1)
      : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + effectRowsRead(child), 0);
}

let database: Awaited<ReturnType<typeof freshDatabase>>;
let pool: PgPool;
let store: PostgresStore;
before(async () => {
  database = await freshDatabase();
  // One connection, so the journal's prepared statement is on the connection the test explains it on.
  pool = await createPgPool({ connectionString: database.url, max: 1 });
  store = new PostgresStore({ pool });
  await store.migrate();
});
after(async () => {
  await store.close();
  await pool.end();
  await database.drop();
});

/**
 * Writes `writes` as one batch and answers the rows of `effects` its statement read, explained
 * (EXPLAIN ANALYZE, rolled back) with the generic plan the server settles on for a prepared
 * statement, on the connection that prepared it, just before the batch itself is sent.
 */
async function rowsReadBy(instanceId: number, writes: JournalWrite[], fence: Parameters<PostgresStore['journal']>[2]): Promise<number> {
  const client = await pool.connect();
  let plan: PlanNode | undefined;
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;
  // The pool calls `query(config, values, callback)`.
  (client as unknown as { query: unknown }).query = (config: unknown, ...rest: unknown[]) => {
    const { name, values } = config as { name?: string; values?: unknown[] };
    if (name === undefined || values === undefined) return query(config, ...rest);
    const callback = rest.find((arg) => typeof arg === 'function') as (error: unknown, result?: unknown) => void;
    const explainThenRun = async () => {
      await query('BEGIN');
      await query('SET LOCAL plan_cache_mode = force_generic_plan');
      // EXECUTE takes its arguments as SQL: each value as the text pg would bind, quoted.
      const literal = (value: unknown) => {
        const text = prepareValue(value);
        return text === null ? 'NULL' : `'${String(text).replaceAll("'", "''")}'`;
      };
      const explained = await query(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ${name}(${values.map(literal).join(', ')})`);
      plan = ((explained.rows[0]?.['QUERY PLAN'] ?? []) as { Plan: PlanNode }[])[0]?.Plan;
      await query('ROLLBACK');
      return query(config);
    };
    explainThenRun().then(
      (result) => callback(undefined, result),
      (error: unknown) => callback(error),
    );
    return undefined;
  };
  client.release();
  try {
    await store.journal(instanceId, writes, fence);
  } finally {
    (client as unknown as { query: unknown }).query = query;
  }
  assert.ok(plan, 'the batch went the usual way');
  return effectRowsRead(plan);
}

test("a journal batch reads none of the instance's entries but its own keys'", async () => {
  const instance = await store.instance('journal-plan', 'hash', { params: {}, version: null });
  await store.ensureShards(instance, ['main'], { version: null });
  const lease = await store.claim(instance, 'worker', 60_000);
  assert.ok(lease);
  const fence = { shardId: lease.shardId, token: lease.token, shard: lease.shard, runId: lease.runId };
  const scope = { instanceId: instance.id, generation: instance.generation };
  const batch = (n: number): JournalWrite[] =>
    Array.from({ length: 4 }, (_, i): JournalWrite[] => {
      const key = `disable-${n * 4 + i}`;
      const previous = `disable-${(n - 1) * 4 + i}`;
      return [
        ...(n > 0
          ? [{ kind: 'done' as const, scope, key: previous, result: previous, events: [{ type: 'effect:done', shard: 'main', data: { key: previous } }] }]
          : []),
        { kind: 'claim' as const, scope, key, events: [{ type: 'effect:start', shard: 'main', data: { key } }] },
      ];
    }).flat();
  // The instance has recorded a few hundred effects, every one done but the last batch's.
  for (let n = 0; n < 100; n++) await store.journal(instance.id, batch(n), fence);
  // And 20,000 more, as a long job's would be: at a few hundred rows a sequential scan is the
  // cheapest plan for the server (PostgreSQL 15's generic plan takes it), which says nothing of
  // the statement; what must not happen is a batch reading every row of a big instance.
  await pool.query(
    `INSERT INTO checkpointed.effects (instance_id, generation, key, status, result, attempts, updated_at)
     SELECT $1, $2, 'earlier-' || i, 'done', 'null', 1, 0 FROM generate_series(1, 20000) AS i`,
    [instance.id, instance.generation],
  );
  await pool.query('ANALYZE checkpointed.effects');
  const named = (await pool.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'ckpt_journal_%'")).rows;
  assert.equal(named.length, 1, 'the usual batch is one prepared statement');
  const usual = await rowsReadBy(instance.id, batch(100), fence);
  assert.equal(usual, 0, `the usual batch reads no effect rows (its claims insert, its completions upsert): it read ${usual}`);
  assert.equal((await store.effect(scope, 'disable-400'))?.status, 'intent', 'and the batch itself was written');
  // One of the last batch's effects failed: its intent is forgotten in the same way.
  const [first, ...rest] = batch(101);
  assert.equal(first?.kind, 'done');
  const withFailed: JournalWrite[] = [
    { kind: 'failed', scope, key: 'disable-400', events: [{ type: 'effect:failed', shard: 'main', data: { key: 'disable-400' } }] },
    ...rest,
  ];
  const forgetting = await rowsReadBy(instance.id, withFailed, fence);
  assert.ok(forgetting <= 1, `a batch forgetting one intent reads that entry alone: it read ${forgetting} effect rows`);
  assert.equal(await store.effect(scope, 'disable-400'), undefined, 'the intent is forgotten');
  assert.equal((await store.effect(scope, 'disable-401'))?.status, 'done');
  // A claim of a key that has an entry fails the usual way's plain insert: the batch goes the
  // locked way, which answers the entry, writes the other claim, and keeps the chain whole.
  const outcomes = await store.journal(
    instance.id,
    [
      { kind: 'claim', scope, key: 'disable-1', events: [{ type: 'effect:start', shard: 'main', data: { key: 'disable-1' } }] },
      { kind: 'claim', scope, key: 'fresh', events: [{ type: 'effect:start', shard: 'main', data: { key: 'fresh' } }] },
    ],
    fence,
  );
  assert.equal((outcomes[0] as { status?: string } | undefined)?.status, 'done', 'the claim of a done key answers its entry');
  assert.equal(outcomes[1], undefined, 'the fresh claim is written');
  assert.equal((await store.effect(scope, 'fresh'))?.status, 'intent');
  const chain = await readChain(store, instance.id);
  assert.equal(verifyChain(chain.events, chain.head, undefined).ok, true, 'the chain is intact');
  assert.equal(
    chain.events.filter((stored) => stored.type === 'effect:start' && (stored.data as { key?: string }).key === 'disable-1').length,
    1,
    "the refused claim's event is not linked",
  );
});
