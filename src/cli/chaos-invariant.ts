import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { firstLine, UsageError } from '../errors.ts';
import type { ChaosCheckInput, ChaosInvariant, ChaosPrepareInput, ChaosPrepareStore } from '../job/chaos-check.ts';
import { type AnyJob, isJob } from '../job/define.ts';
import { openStore } from '../store/open-store.ts';
import type { RunInfo, StoredEvent } from '../store/store.ts';
import type { InvariantResult } from './chaos-report.ts';
import { lastLine } from './chaos-round.ts';
import { startChild } from './chaos-workers.ts';

/** A job file as chaos loads it: the job, and what may judge its end state. */
export interface JobModule {
  default: AnyJob;
  invariant?: unknown;
  verify?: unknown;
  prepareStore?: unknown;
}

/** The job's `prepareStore` export, if any, on a fresh scratch store. */
export async function prepareStore(module: JobModule, file: string, input: ChaosPrepareInput): Promise<void> {
  if (typeof module.prepareStore !== 'function') return;
  try {
    await (module.prepareStore as ChaosPrepareStore)(input);
  } catch (error) {
    throw new UsageError(`${file}: prepareStore() failed on the scratch store: ${firstLine(error)}`, { cause: error });
  }
}

export async function importJob(file: string, path: string): Promise<JobModule> {
  let module: { default?: unknown; invariant?: unknown; verify?: unknown; prepareStore?: unknown };
  try {
    module = (await import(pathToFileURL(path).href)) as typeof module;
  } catch (error) {
    throw new UsageError(`cannot load job file ${file}: ${firstLine(error)}`, { cause: error });
  }
  if (!isJob(module.default)) throw new UsageError(`${file} does not default-export a job; end it with: export default defineJob({ name, source, process })`);
  return module as JobModule;
}

/** A round's runs and events, read from its store once it is over. */
export async function readHistory(url: string, job: string, paramsHash: string): Promise<{ runs: RunInfo[]; events: StoredEvent[] }> {
  const store = await openStore(url);
  try {
    const instance = (await store.listInstances(job)).find((candidate) => candidate.paramsHash === paramsHash);
    if (instance === undefined) return { runs: [], events: [] };
    return { runs: await store.listRuns(instance.id), events: await store.listEvents(instance.id) };
  } finally {
    await store.close();
  }
}

/** The job's `invariant` (or `verify`) export, else `--check <script>` (exit 0 passes). */
export async function checkInvariant(
  module: JobModule,
  script: string | undefined,
  input: ChaosCheckInput,
  env: NodeJS.ProcessEnv,
  store: string,
): Promise<InvariantResult> {
  if (script !== undefined) {
    const child = startChild([resolve(script)], {
      ...env,
      CKPT_CHAOS_STORE: store,
      CKPT_CHAOS_PARAMS: JSON.stringify(input.params),
      CKPT_CHAOS_HELD: JSON.stringify(input.held),
    });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) stream?.setEncoding('utf8').on('data', (chunk: string) => (output = (output + chunk).slice(-4000)));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    return { source: 'check script', ok: code === 0, message: code === 0 ? lastLine(output) : `${script} exited ${code}: ${lastLine(output)}` };
  }
  const check = typeof module.invariant === 'function' ? module.invariant : typeof module.verify === 'function' ? module.verify : undefined;
  if (check === undefined) return { source: 'none', ok: true, message: 'none: export an invariant function from the job file, or pass --check <script>' };
  const source = check === module.invariant ? 'invariant export' : 'verify export';
  try {
    const result = await (check as ChaosInvariant)(input);
    if (result === false) return { source, ok: false, message: 'it returned false' };
    if (typeof result === 'string') return { source, ok: false, message: result };
    return { source, ok: true, message: '' };
  } catch (error) {
    return { source, ok: false, message: firstLine(error) };
  }
}
