import { existsSync } from 'node:fs';
import { ExitCode, UsageError } from '../errors.ts';
import { retryDeadLetters } from '../job/dlq-retry.ts';
import { shutdownOnSignals } from '../job/shutdown.ts';
import { redactJson } from '../redact.ts';
import type { DeadLetter } from '../store/store.ts';
import { formatParams, formatPosition, formatTime } from './format.ts';
import { loadJob, parseParams } from './load-job.ts';
import { checkLeaseMs } from './run-command.ts';
import { type CliIo, findInstances, openCliStore, secretKeyFileFor } from './shared.ts';
import { renderTable } from './table.ts';

interface DlqOptions {
  store?: string;
  param: string[];
  json?: boolean;
  retry?: boolean;
  leaseMs?: number;
}

const looksLikeFile = (arg: string) => /\.(m?[jt]s|cjs|cts|mts)$/.test(arg) || arg.includes('/');

/** `ckpt dlq <job>`: list dead letters; `ckpt dlq <job-file> --retry`: process them again. */
export async function dlqCommand(jobArg: string, options: DlqOptions, io: CliIo): Promise<number> {
  const params = parseParams(options.param);
  if (options.leaseMs !== undefined) {
    if (!options.retry) throw new UsageError('--lease-ms is the lease of a retry: give it with --retry');
    checkLeaseMs(options.leaseMs);
  }
  if (options.retry && !(looksLikeFile(jobArg) && existsSync(jobArg))) {
    throw new UsageError(`--retry runs the job's code, so it needs the job file: ckpt dlq path/to/${jobArg}.ts --retry`);
  }
  const job = looksLikeFile(jobArg) ? await loadJob(jobArg) : undefined;
  const name = job?.name ?? jobArg;
  const store = await openCliStore(options.store, { existing: true });
  try {
    if (options.retry && job !== undefined) {
      const keyFile = secretKeyFileFor(options.store);
      // A signal stops the retry between letters, each tried one committed or left as it was.
      const shutdown = shutdownOnSignals({ onForce: () => process.exit(ExitCode.interrupted) });
      const result = await retryDeadLetters(job, {
        store,
        params,
        signal: shutdown.signal,
        ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
        ...(keyFile === undefined ? {} : { secretKeyFile: keyFile }),
      }).finally(() => shutdown.dispose());
      if (options.json) {
        const alreadyResolved = result.alreadyResolved.map((letter) => letter.id);
        const held = result.held.map(({ letter, holder }) => ({ id: letter.id, shard: letter.shard, holder }));
        const summary = { resolved: result.resolved.map((letter) => letter.id), failed: result.failed, alreadyResolved, notTried: result.notTried, held };
        io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      } else {
        for (const { letter, error } of result.failed)
          io.stdout.write(`still failing: #${letter.id} ${letter.shard}@${formatPosition(letter.position)}: ${error}\n`);
        io.stdout.write(
          `retried ${result.resolved.length + result.failed.length} dead letters of ${name}: ${result.resolved.length} succeeded and were removed, ${result.failed.length} still failing\n`,
        );
        if (result.alreadyResolved.length > 0) {
          io.stdout.write(
            `${result.alreadyResolved.length} dead letters were already retried by another process meanwhile; this retry's writes for them were rolled back\n`,
          );
        }
      }
      if (result.held.length > 0) {
        const holders = [...new Set(result.held.map(({ letter, holder }) => `shard ${letter.shard} by ${holder}`))].join(', ');
        io.stderr.write(
          `ckpt: ${result.held.length} dead letters of ${name} were not retried: their shard is held (${holders}), by another dlq --retry or a run; run the same command again once it ends\n`,
        );
      }
      if (result.notTried > 0) {
        io.stderr.write(
          `ckpt: interrupted by a signal: ${result.notTried} dead letters of ${name} were not retried (every one tried is settled); run the same command again for them\n`,
        );
        return ExitCode.interrupted;
      }
      if (result.failed.length > 0) return ExitCode.failed;
      return result.held.length > 0 ? ExitCode.refused : ExitCode.completed;
    }
    const letters: { params: string; letter: DeadLetter }[] = [];
    for (const instance of await findInstances(store, name, params)) {
      // Shown as the dashboard shows them: a record's secret-named fields (a user's password) as
      // [redacted]. Stored whole, as `--retry` needs the record itself.
      for (const letter of await store.listDeadLetters(instance.id)) {
        letters.push({
          params: formatParams(instance.params),
          letter: { ...letter, record: redactJson(letter.record), position: redactJson(letter.position) },
        });
      }
    }
    if (options.json) {
      io.stdout.write(
        `${JSON.stringify(
          letters.map(({ letter }) => letter),
          null,
          2,
        )}\n`,
      );
      return 0;
    }
    if (letters.length === 0) {
      io.stdout.write(`no dead letters for ${name}\n`);
      return 0;
    }
    const rows = letters.map(({ params: shown, letter }) => [
      String(letter.id),
      shown,
      letter.shard,
      formatPosition(letter.position),
      String(letter.attempts),
      formatTime(letter.createdAt),
      letter.error,
      clip(JSON.stringify(letter.record), 60),
    ]);
    io.stdout.write(`${renderTable(['ID', 'PARAMS', 'SHARD', 'POSITION', 'ATTEMPTS', 'AT', 'ERROR', 'RECORD'], rows)}\n`);
    io.stdout.write(`${letters.length} dead letters; reprocess them with: ckpt dlq <job-file> --retry\n`);
    return 0;
  } finally {
    await store.close();
  }
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}
