// DBOS Transact variants of workloads (c) and (e), and DBOS's side of the resume-latency measurement.
// DBOS keeps a row per completed step in its system database; these runs put that beside
// checkpointed's one cursor row per interval.
import { createRequire } from 'node:module';
import type { VariantInput, VariantResult } from '../variants.ts';
import { digest, FakeApi, pool } from '../workloads.ts';

const require = createRequire(import.meta.url);

function pgOptions(url: string) {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 5432), database: parsed.pathname.slice(1), username: parsed.username, password: parsed.password };
}

async function loadDbos(url: string) {
  const { DBOS } = (await import('@dbos-inc/dbos-sdk')) as typeof import('@dbos-inc/dbos-sdk');
  DBOS.setConfig({ name: 'ckpt-bench', applicationVersion: 'bench-1', systemDatabaseUrl: url, logLevel: 'error' });
  return DBOS;
}

/** Workload (c) as one DBOS workflow over all records: a step or a transaction step per record. */
export async function runDbos(input: VariantInput): Promise<VariantResult> {
  const url = input.target;
  const DBOS = await loadDbos(url);
  const { PostgresDataSource } = (await import('@dbos-inc/postgres-datasource')) as typeof import('@dbos-inc/postgres-datasource');
  const pg = require('pg') as typeof import('pg');
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  await pool.query('CREATE TABLE IF NOT EXISTS bench_out (id BIGINT PRIMARY KEY, digest TEXT NOT NULL)');
  const dataSource = new PostgresDataSource('app', pgOptions(url));
  const insertInTransaction = dataSource.registerTransaction(
    async (n: number) => {
      await PostgresDataSource.client`INSERT INTO bench_out (id, digest) VALUES (${n}, ${digest(n)})`;
    },
    { name: 'insertRow' },
  );
  const transactional = input.variant === 'dbos-tx';
  const workflow = DBOS.registerWorkflow(
    async (records: number) => {
      for (let n = 0; n < records; n++) {
        if (transactional) await insertInTransaction(n);
        // A plain step: its insert commits on its own, DBOS records the step's completion after.
        else
          await DBOS.runStep(async () => void (await pool.query('INSERT INTO bench_out (id, digest) VALUES ($1, $2)', [n, digest(n)])), { name: 'insertRow' });
      }
      return records;
    },
    { name: 'benchWorkflow' },
  );
  await DBOS.launch();
  const started = performance.now();
  await workflow(input.records);
  const ms = performance.now() - started;
  await DBOS.shutdown();
  await pool.end();
  return { ms };
}

/**
 * Workload (e) on DBOS: a workflow per record whose two steps each await the fake API's 10 ms
 * call (DBOS records each step's completion in its system database), 32 workflows at once.
 */
export async function runDbosEffects(input: VariantInput): Promise<VariantResult> {
  const DBOS = await loadDbos(input.target);
  const api = new FakeApi();
  const workflow = DBOS.registerWorkflow(
    async (n: number) => {
      await DBOS.runStep(() => api.call(`disable-${n}`), { name: 'disable' });
      await DBOS.runStep(() => api.call(`notify-${n}`), { name: 'notify' });
      return n;
    },
    { name: 'effectsWorkflow' },
  );
  await DBOS.launch();
  const started = performance.now();
  await pool(input.records, 32, (n) => workflow(n));
  const ms = performance.now() - started;
  await DBOS.shutdown();
  if (api.calls.size !== 2 * input.records) throw new Error(`DBOS (e) made ${api.calls.size} calls, not ${2 * input.records}`);
  return { ms };
}

/**
 * Resume latency, DBOS side. `prepare` runs a workflow that kills its own process right after
 * `done` steps completed; `measure` launches DBOS again, which recovers the workflow, replays the
 * recorded steps and runs the next one: the time from process start to that step is printed.
 */
export async function dbosResume(url: string, mode: 'prepare' | 'measure', done: number): Promise<number | undefined> {
  const DBOS = await loadDbos(url);
  let measured: number | undefined;
  let resolveMeasured: (ms: number) => void = () => undefined;
  const measuredPromise = new Promise<number>((resolve) => {
    resolveMeasured = resolve;
  });
  const workflow = DBOS.registerWorkflow(
    async (total: number) => {
      for (let n = 0; n < total; n++) {
        await DBOS.runStep(
          async () => {
            if (n === done) {
              if (mode === 'prepare') process.kill(process.pid, 'SIGKILL');
              measured = performance.now();
              resolveMeasured(measured);
              await new Promise(() => undefined); // hold here: the measurement is taken
            }
            return digest(n);
          },
          { name: 'record' },
        );
      }
      return total;
    },
    { name: 'resumeWorkflow' },
  );
  await DBOS.launch();
  if (mode === 'prepare') {
    await DBOS.startWorkflow(workflow, { workflowID: `resume-${done}` })(done + 10);
    await new Promise(() => undefined); // the step at `done` kills the process
  }
  return measuredPromise;
}
