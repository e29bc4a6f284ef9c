import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, openSync, readlinkSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CheckpointedError, ExitCode, firstLine, UsageError } from '../errors.ts';
import { auditEvents, type EventType } from '../events.ts';
import type { JsonValue } from '../json.ts';
import { syncDirectory } from '../make-directory.ts';
import { chainKeyFinder, REDACTED } from '../secret.ts';
import { type ChainReport, readChain, verifyChain } from '../store/audit-chain.ts';
import { parseStoreUrl } from '../store/open-store.ts';
import type { InstanceInfo, Store, StoredEvent } from '../store/store.ts';
import { formatCount, formatParams, isoTime } from './format.ts';
import { parseParams } from './load-job.ts';
import { type CliIo, findInstances, openCliStore, secretKeyFileFor, storeUrl } from './shared.ts';

interface AuditOptions {
  store?: string;
  param: string[];
  verify?: boolean;
  export?: 'ndjson' | 'csv';
  out?: string;
}

/** One exported event: what an auditor asks (who, when, which effect, how it was settled) and its link. */
interface AuditRow {
  job: string;
  params: string;
  generation: number;
  seq: number | null;
  id: number;
  at: string;
  type: string;
  decision: boolean;
  shard: string | null;
  run: number | null;
  worker: string | null;
  key: string | null;
  outcome: string | null;
  details: string;
  prevHash: string | null;
  hash: string | null;
  keyed: boolean | null;
}

const COLUMNS: (keyof AuditRow)[] = [
  'job',
  'params',
  'generation',
  'seq',
  'id',
  'at',
  'type',
  'decision',
  'shard',
  'run',
  'worker',
  'key',
  'outcome',
  'details',
  'prevHash',
  'hash',
  'keyed',
];

/**
 * `ckpt audit <job> --verify | --export ndjson|csv`: check each matching instance's event chain
 * (exit 0 intact, 1 naming the first bad event), or write its events as evidence. Read-only: it
 * reaps no dead worker, so auditing never adds to the log it audits.
 */
export async function auditCommand(job: string, options: AuditOptions, io: CliIo): Promise<number> {
  if (!options.verify && options.export === undefined) throw new UsageError('say what to do: ckpt audit <job> --verify, or --export ndjson|csv [--out FILE]');
  if (options.out !== undefined && options.export === undefined) throw new UsageError('--out needs --export ndjson|csv');
  const key = chainKeyFinder(io.env, secretKeyFileFor(options.store))();
  const toFile = options.export !== undefined && options.out !== undefined && options.out !== '-';
  const signals = toFile ? signalsWhileExporting(options.out as string, io) : undefined;
  const store = await openCliStore(options.store, { existing: true });
  try {
    const instances = await findInstances(store, job, parseParams(options.param), { reap: false });
    const checked: { instance: InstanceInfo; events: StoredEvent[]; report: ChainReport }[] = [];
    for (const instance of instances) {
      // One snapshot even while a job appends: the head, the log up to it.
      const { head, events } = await readChain(store, instance.id);
      checked.push({ instance, events, report: verifyChain(events, head, key) });
    }
    if (options.export !== undefined) {
      const rows: AuditRow[] = [];
      for (const { instance, events } of checked) rows.push(...(await exportRows(store, instance, events)));
      const text = options.export === 'csv' ? toCsv(rows) : rows.map((row) => JSON.stringify(row)).join('\n') + (rows.length > 0 ? '\n' : '');
      // `--out -` is standard output, as everywhere on the command line: not a file named `-`.
      if (options.out === undefined || options.out === '-') (io.dataOut ?? io.stdout).write(text);
      else {
        refuseStoreAsOut(options.out, options.store);
        writeOut(options.out, text);
        signals?.written();
        io.stdout.write(`wrote ${rows.length} events of ${job} to ${options.out} (${options.export})\n`);
      }
    }
    for (const { instance, report, events } of checked) {
      const label = `${instance.job} ${formatParams(instance.params)}`.replace(/ -$/, '');
      if (!report.ok) {
        const where = report.event === undefined ? 'the log is empty' : describeEvent(report.event);
        const message = `audit of ${label}: ${where}: ${report.problem}`;
        if (report.needsKey) throw new UsageError(message);
        throw new CheckpointedError(`${message}; the event log is not intact`, ExitCode.failed, { job });
      }
      if (options.verify) {
        io.stdout.write(`${label}: ${intact(report)}\n`);
        // Intact is not the same as uneventful: an effect a fenced-out worker completed late is said.
        for (const event of events.filter((each) => each.type === 'effect:late-completion')) {
          io.stdout.write(`  ${describeEvent(event)}: ${outcomeOf(event)}; key ${JSON.stringify(event.data.key)}, late run ${String(event.data.runId)}\n`);
        }
        // So are the guards: each hold, each person's approval, each release.
        for (const event of events.filter((each) => each.type.startsWith('guard:'))) io.stdout.write(`  ${describeEvent(event)}: ${outcomeOf(event)}\n`);
      }
    }
    return ExitCode.completed;
  } finally {
    signals?.dispose();
    await store.close();
  }
}

/**
 * SIGINT and SIGTERM during an export to a file. With no handler, one that landed between the
 * temporary file's open and its rename killed the process there, and the temporary file stayed.
 * writeOut is synchronous, so a handler never runs in the middle of it: a signal that lands while
 * it writes waits for the write to end, whole, and the command ends as it would have (exit 0).
 * One that lands before, while the store is read, stops the export with one line (exit 3).
 */
function signalsWhileExporting(out: string, io: CliIo): { written(): void; dispose(): void } {
  let written = false;
  const handler = (signal: NodeJS.Signals) => {
    if (written) return;
    io.stderr.write(`ckpt: audit stopped by ${signal} before ${out} was written: nothing written (an earlier file there is unchanged); run again\n`);
    process.exit(ExitCode.interrupted);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    written: () => {
      written = true;
    },
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

/**
 * The export file, whole or not at all: written to a temporary file beside it, flushed, then
 * renamed over it (and the directory flushed), so a crash or a full disk never leaves a cut-off
 * evidence file that reads as complete; an earlier export there stays as it was until then. A
 * path that cannot be written (no such directory, no right) is the user's to fix, exit 2.
 */
function writeOut(path: string, text: string): void {
  // A symlink is written through (its target replaced); a pipe or a device (`--out /dev/stdout`)
  // is written as it is: there is no file there to leave cut off, nor one to replace.
  const found = statSync(path, { throwIfNoEntry: false });
  const device = found !== undefined && !found.isFile() && !found.isDirectory();
  const target = device ? path : linkTarget(path);
  const temporary = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    if (device) {
      writeFileSync(path, text);
      return;
    }
    const fd = openSync(temporary, 'wx', 0o644);
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, target);
  } catch (error) {
    if (!device) rmSync(temporary, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'its directory does not exist'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory'
            : code === 'ENOSPC'
              ? device
                ? 'no space left on the device'
                : 'the disk is full (nothing was written; an earlier file there is unchanged)'
              : code === 'EPIPE'
                ? 'the reader went away before the export was written whole'
                : firstLine(error);
    throw new UsageError(`cannot write --out ${path}: ${why}`, { cause: error });
  }
  syncDirectory(dirname(target));
}

/**
 * `--out` naming the store itself (`--out .ckpt/ckpt.db`, a slip of the keyboard), one of its side
 * files, or any SQLite database: the export would replace it, and with it every checkpoint, the
 * effect journal or the key. Refused (exit 2) before anything is written.
 */
function refuseStoreAsOut(out: string, storeFlag: string | undefined): void {
  const target = linkTarget(resolve(out));
  const store = parseStoreUrl(storeUrl(storeFlag));
  if (store.kind === 'sqlite' && store.path !== ':memory:') {
    const main = linkTarget(resolve(store.path));
    const files = [main, `${main}-wal`, `${main}-shm`, `${main}.effects`, `${main}.effects-wal`, `${main}.effects-shm`, `${main}.key`];
    if (files.includes(target)) {
      throw new UsageError(`--out ${out} is the store's own file (${basename(target)}): the export would replace it; write the export elsewhere`);
    }
  }
  // Only a regular file is looked into: opening a pipe to read would wait for its writer.
  if (statSync(target, { throwIfNoEntry: false })?.isFile() !== true) return;
  let head = '';
  try {
    const fd = openSync(target, 'r');
    try {
      const bytes = Buffer.alloc(16);
      head = bytes.subarray(0, readSync(fd, bytes, 0, 16, 0)).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return; // nothing there (or unreadable): nothing to lose
  }
  if (head === 'SQLite format 3\0')
    throw new UsageError(`--out ${out} is a SQLite database (a store?): the export would replace it; write the export elsewhere`);
}

/** Where a symlink (even a dangling one, or a chain) points, so that the rename replaces its target, not it. */
function linkTarget(path: string): string {
  let at = path;
  for (let hops = 0; hops < 40 && lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink() === true; hops++) {
    at = resolve(dirname(at), readlinkSync(at));
  }
  return at;
}

/** An event as `ckpt audit --verify` (and the dashboard) names it: id, type, shard, chain position. */
export function describeEvent(event: StoredEvent): string {
  const where = [event.type, event.shard === null ? undefined : `shard ${event.shard}`, event.chain === null ? undefined : `chain position ${event.chain.seq}`];
  return `event ${event.id} (${where.filter((part) => part !== undefined).join(', ')})`;
}

function intact(report: Extract<ChainReport, { ok: true }>): string {
  const parts = [`${formatCount(report.chained)} events, chain intact`];
  if (report.chained > 0) {
    parts.push(
      report.keyed === report.chained
        ? "keyed with the store's secret key"
        : report.keyed === 0
          ? 'not keyed (no secret key; set CKPT_SECRET_KEY so that whoever can write the store cannot rebuild the chain)'
          : `${formatCount(report.keyed)} of them keyed with the store's secret key`,
    );
  }
  if (report.legacy > 0) parts.push(`${formatCount(report.legacy)} earlier events predate the chain and are not covered`);
  if (report.head !== undefined) parts.push(`head ${report.head.hash.slice(0, 16)}…`);
  return parts.join('; ');
}

async function exportRows(store: Store, instance: InstanceInfo, events: StoredEvent[]): Promise<AuditRow[]> {
  const workers = new Map((await store.listRuns(instance.id)).map((run) => [run.id, run.worker]));
  return events.map((event) => {
    const data = redactSealed(event.data) as { [key: string]: JsonValue };
    const { shard: _shard, key, ...details } = data;
    const by = typeof data.by === 'string' ? data.by : typeof data.worker === 'string' ? data.worker : null;
    return {
      job: instance.job,
      params: JSON.stringify(instance.params),
      generation: event.generation,
      seq: event.chain?.seq ?? null,
      id: event.id,
      at: isoTime(event.at),
      type: event.type,
      decision: auditEvents.has(event.type as EventType),
      shard: event.shard,
      run: event.runId,
      worker: (event.runId === null ? undefined : workers.get(event.runId)) ?? by,
      key: typeof key === 'string' ? key : null,
      outcome: outcomeOf(event),
      details: JSON.stringify(details),
      prevHash: event.chain?.prevHash ?? null,
      hash: event.chain?.hash ?? null,
      keyed: event.chain?.keyed ?? null,
    };
  });
}

/** The decision an event records, in a word or two; "settled by verify" where verify said done. */
function outcomeOf(event: StoredEvent): string | null {
  const data = event.data;
  if (event.type === 'effect:verified') return data.done === true ? 'done: settled by verify, not run again' : 'not done: run again';
  for (const field of ['resolution', 'outcome']) if (typeof data[field] === 'string') return data[field];
  if (event.type === 'effect:start') return 'started';
  if (event.type === 'effect:done') return 'done';
  if (event.type === 'effect:failed') return 'failed: will run again';
  if (event.type.startsWith('guard:')) return guardOutcome(event.type, data);
  if (event.type === 'effect:late-completion') {
    return data.kept === 'first'
      ? `late completion by a fenced-out run: first result kept (run ${String(data.holderRunId)} holds the shard)`
      : `late completion by a fenced-out run: recorded over its intent (run ${String(data.holderRunId)} holds the shard)`;
  }
  return null;
}

/** A guard event in words: what held, who approved what and why, what was released. */
function guardOutcome(type: string, data: StoredEvent['data']): string {
  const round = `round ${String(data.round)}`;
  if (type === 'guard:held') {
    const limit = typeof data.kind === 'string' ? `: ${String(data.used)} of ${Number(data.max) + Number(data.raised ?? 0)} ${data.kind} effects started` : '';
    return `held at ${String(data.hold)} (${round})${limit}; ${String(data.required)} approval(s) needed`;
  }
  if (type === 'guard:approved') {
    const os = data.osUser === null || data.osUser === undefined ? '' : ` (OS user ${String(data.osUser)})`;
    const raise = data.raise === null || data.raise === undefined ? '' : `, raise +${String(data.raise)}`;
    return `approved ${String(data.name)} (${round}) by ${String(data.by)}${os}${raise}: ${JSON.stringify(data.reason)}; ${String(data.approvals)} of ${String(data.required)}`;
  }
  const raise = data.raise === null || data.raise === undefined ? '' : `, limit raised by ${String(data.raise)}`;
  const approvers = Array.isArray(data.approvers) ? data.approvers.join(', ') : '';
  return `released ${String(data.name)} (${round})${raise}; approved by ${approvers}`;
}

/** Secrets sealed in stored values are never exported, not even encrypted. */
function redactSealed(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(redactSealed);
  if (value !== null && typeof value === 'object') {
    if ('$ckptSealed' in value) return REDACTED;
    return Object.fromEntries(Object.entries(value).map(([name, entry]) => [name, redactSealed(entry)]));
  }
  return value;
}

/**
 * A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a `'`
 * in front, OWASP's rule for CSV injection: a shard name, an effect key or an error written by a
 * job must not become `=HYPERLINK(…)` in the auditor's sheet. Numbers and booleans are ours.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' && /^[=+\-@\t\r]/.test(value) ? `'${value}` : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function toCsv(rows: AuditRow[]): string {
  const cell = csvCell;
  return [COLUMNS.join(','), ...rows.map((row) => COLUMNS.map((column) => cell(row[column])).join(','))].join('\n') + '\n';
}
