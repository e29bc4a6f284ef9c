import { Command, CommanderError, Help, InvalidArgumentError, Option } from 'commander';
import { CheckpointedError, ExitCode, firstLine as errorLine } from '../errors.ts';
import { redactText } from '../redact.ts';
import { type CliIo, setIo } from './shared.ts';
import { guardedIo } from './terminal-text.ts';

/**
 * Each command's code, loaded only when that command runs: `ckpt status` does not load `ckpt
 * chaos`, and `ckpt run` none of the others (a start of `ckpt` costs what it loads).
 */
const commands = {
  run: () => import('./run-command.ts'),
  plan: () => import('./plan-command.ts'),
  apply: () => import('./apply-command.ts'),
  dlq: () => import('./dlq-command.ts'),
  query: () => import('./query-commands.ts'),
  dashboard: () => import('./dashboard/dashboard-command.ts'),
  chaos: () => import('./chaos-command.ts'),
  audit: () => import('./audit-command.ts'),
  approve: () => import('./approve-command.ts'),
};
const moduleOf: { [command: string]: keyof typeof commands } = {
  run: 'run',
  plan: 'plan',
  apply: 'apply',
  dlq: 'dlq',
  status: 'query',
  runs: 'query',
  events: 'query',
  reset: 'query',
  dashboard: 'dashboard',
  chaos: 'chaos',
  audit: 'audit',
  approve: 'approve',
};

/**
 * Load the code of the command `argv` names (the first word that is not an option), before
 * `main` runs it. bin/ckpt.js calls this while it still holds signals, so that a signal during
 * loading is still answered "stopped while starting" (exit 3), not a silent death.
 */
export async function preload(argv: string[]): Promise<void> {
  const command = argv.find((arg) => !arg.startsWith('-'));
  const module = command !== undefined && Object.hasOwn(moduleOf, command) ? moduleOf[command] : undefined;
  if (module !== undefined) await commands[module]();
}

const collect = (value: string, previous: string[]) => [...previous, value];

const positiveInteger =
  (name: string, max = Number.MAX_SAFE_INTEGER) =>
  (value: string) => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < 1 || number > max)
      throw new InvalidArgumentError(`${name} must be a whole number ${max === Number.MAX_SAFE_INTEGER ? '≥ 1' : `from 1 to ${max}`}`);
    return number;
  };
const wholeNumber = (name: string) => (value: string) => {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number)) throw new InvalidArgumentError(`${name} must be a whole number ≥ 0`);
  return number;
};
/** The longest delay a Node timer takes (about 24.8 days); a longer one would fire at once. */
const MAX_MS = 2_147_483_647;

const port = (name: string) => (value: string) => {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || number > 65_535) throw new InvalidArgumentError(`${name} must be a port number from 0 (any free port) to 65535`);
  return number;
};

const percent = (name: string) => (value: string) => {
  const number = Number(value.replace(/%$/, ''));
  if (!(number > 0 && number <= 100)) throw new InvalidArgumentError(`${name} must be a percentage in (0, 100]`);
  return number;
};

function program(io: CliIo, exit: { code: number }): Command {
  const root = new Command('ckpt')
    .description('Run batch jobs that checkpoint their progress and resume after a crash.')
    .version(process.env.npm_package_version ?? '0.1.0', '-V, --version')
    .exitOverride()
    .showSuggestionAfterError(true)
    // A repeatable option starts empty: "(default: [])" in the help says nothing.
    .configureHelp({ optionDescription: (option) => new Help().optionDescription(option).replace(/ \(default: \[\]\)$/, '') })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Commander's own messages become our one line: "ckpt: <what>; see ckpt <cmd> --help".
      outputError: () => undefined,
    });

  const storeOption = () => new Option('--store <url>', 'store URL (default: $CKPT_STORE, else sqlite:.ckpt/ckpt.db)');
  const paramOption = () => new Option('--param <key=value>', 'job param (repeatable)').argParser(collect).default([]);
  const jsonOption = () => new Option('--json', 'print JSON');

  root
    .command('run')
    .description('run (or resume) a job instance')
    .argument('<job-file>', 'a file that default-exports defineJob({...})')
    .addOption(storeOption())
    .addOption(paramOption())
    .option('--rerun', 'run a completed (or partly done) instance again from the beginning, as a new generation')
    .addOption(new Option('--every <n>', 'checkpoint every N records').argParser(positiveInteger('--every')).conflicts('everyMs'))
    .addOption(new Option('--every-ms <ms>', 'checkpoint every T ms of work').argParser(positiveInteger('--every-ms', MAX_MS)).conflicts('checkpoint'))
    .addOption(
      new Option('--checkpoint <policy>', "'auto': choose the interval from measured cost and failure history (the default unless the job sets one)")
        .choices(['auto'])
        .conflicts('every'),
    )
    .addOption(
      new Option('--max-rework-ms <ms>', 'auto: most work a crash may lose (default 5000)')
        .argParser(positiveInteger('--max-rework-ms', MAX_MS))
        .conflicts(['every', 'everyMs']),
    )
    .addOption(
      new Option('--max-overhead <percent>', 'auto: checkpoint time as a share of the run (default 1)')
        .argParser(percent('--max-overhead'))
        .conflicts(['every', 'everyMs']),
    )
    .addOption(new Option('--concurrency <n>', 'records in flight at once').argParser(positiveInteger('--concurrency')))
    .addOption(new Option('--drain-ms <ms>', 'on SIGINT/SIGTERM, how long to wait for records in flight').argParser(positiveInteger('--drain-ms', MAX_MS)))
    .addOption(new Option('--lease-ms <ms>', 'lease length; a worker silent this long is presumed dead').argParser(positiveInteger('--lease-ms', MAX_MS)))
    .option('--wait', 'if live workers hold every unfinished shard, wait to take over or see them finish instead of exiting 4')
    .option('--follow', 'follow the source (a stream) at its head instead of completing; stop with SIGINT/SIGTERM (exit 3)')
    .addOption(
      new Option('--heartbeat-ms <ms>', 'how often the lease is renewed between checkpoints (default: a third of the lease, at most 1 s)').argParser(
        positiveInteger('--heartbeat-ms', MAX_MS),
      ),
    )
    .addOption(
      new Option('--store-retry-ms <ms>', 'how long to keep retrying an unreachable store before failing (default 30000)').argParser(
        positiveInteger('--store-retry-ms', MAX_MS),
      ),
    )
    .addOption(jsonOption().conflicts('quiet'))
    .option('--quiet', 'print only the outcome line and errors')
    .addOption(
      new Option('--on-drift <choice>', 'when the checkpoint no longer matches params, job version or source: fail, restart or resume')
        .choices(['fail', 'restart', 'resume'])
        .default('fail'),
    )
    .addOption(
      new Option('--metrics-port <port>', 'serve Prometheus metrics of this worker at /metrics on this port while it runs').argParser(port('--metrics-port')),
    )
    .addOption(new Option('--metrics-host <host>', 'address the metrics listen on (default 127.0.0.1); any but loopback needs a token'))
    .addOption(new Option('--metrics-token <token>', 'require this token on every metrics request (default: $CKPT_METRICS_TOKEN)'))
    .action(async (file: string, options) => {
      exit.code = await (await commands.run()).runCommand(file, options, io);
    });

  root
    .command('plan')
    .description('run a job with its effects recorded, not performed, and store the plan; --show a plan for review; --approve it')
    .argument('[job-file]', 'a file that default-exports defineJob({...})')
    .addOption(storeOption())
    .addOption(paramOption())
    .addOption(jsonOption())
    .option('--show <plan-id>', 'print a stored plan')
    .option('--approve <plan-id>', 'approve a stored plan (with --by; an audit event)')
    .option('--by <name>', 'with --approve: who reviewed it')
    .option('--reason <text>', 'with --approve: why')
    .addOption(new Option('--limit <n>', 'list at most N effects (default 20)').argParser(positiveInteger('--limit')))
    .option('--all', 'list every effect')
    .action(async (file: string | undefined, options) => {
      exit.code = await (await commands.plan()).planCommand(file, options, io);
    });

  root
    .command('apply')
    .description("run a plan's job for real, performing only the plan's effects; any other is held (exit 7)")
    .argument('<plan-id>', 'the id ckpt plan printed')
    .addOption(storeOption())
    .addOption(paramOption())
    .option('--job <file>', 'the job file, if not where the plan was made from')
    .addOption(new Option('--every <n>', 'checkpoint every N records').argParser(positiveInteger('--every')))
    .addOption(new Option('--concurrency <n>', 'records in flight at once').argParser(positiveInteger('--concurrency')))
    .addOption(new Option('--lease-ms <ms>', 'lease length; a worker silent this long is presumed dead').argParser(positiveInteger('--lease-ms', MAX_MS)))
    .addOption(new Option('--heartbeat-ms <ms>', 'how often the lease is renewed').argParser(positiveInteger('--heartbeat-ms', MAX_MS)))
    .option('--wait', 'if live workers hold every unfinished shard, wait to take over or see them finish instead of exiting 4')
    .addOption(jsonOption().conflicts('quiet'))
    .option('--quiet', 'print only the outcome line and errors')
    .action(async (planId: string, options) => {
      exit.code = await (await commands.apply()).applyCommand(planId, options, io);
    });

  root
    .command('dlq')
    .description('list the dead letters of a job; with --retry (give the job file) process them again and remove those that succeed')
    .argument('<job>', 'job name, or the job file (needed for --retry)')
    .addOption(storeOption())
    .addOption(paramOption())
    .addOption(jsonOption())
    .option('--retry', 'process every dead letter again; those that succeed are removed')
    .addOption(
      new Option('--lease-ms <ms>', "with --retry: lease length of the letters' shards; a retry silent this long is presumed dead").argParser(
        positiveInteger('--lease-ms', MAX_MS),
      ),
    )
    .action(async (job: string, options) => {
      exit.code = await (await commands.dlq()).dlqCommand(job, options, io);
    });

  root
    .command('dashboard')
    .description('serve a live, read-only web page (and /metrics) for every job on the store')
    .addOption(storeOption())
    .addOption(new Option('--port <port>', 'port to listen on (0: any free port)').argParser(port('--port')).default(8765))
    .addOption(new Option('--host <host>', 'address to listen on; any but loopback needs a token').default('127.0.0.1'))
    .addOption(new Option('--token <token>', 'require this token on every request (default: $CKPT_DASHBOARD_TOKEN)'))
    .action(async (options) => {
      exit.code = await (await commands.dashboard()).dashboardCommand(options, io);
    });

  root
    .command('status')
    .description('every job instance on the store: status, shards, progress, holder')
    .addOption(storeOption())
    .addOption(jsonOption())
    .action(async (options) => {
      exit.code = await (await commands.query()).statusCommand({ ...options, param: [] }, io);
    });

  for (const [name, description, command] of [
    ['runs', 'the runs of a job, newest first: outcome, resume position, rework, overhead', 'runsCommand'],
    ['events', 'the event log of a job, oldest first', 'eventsCommand'],
  ] as const) {
    root
      .command(name)
      .description(description)
      .argument('<job>', 'job name')
      .addOption(storeOption())
      .addOption(paramOption())
      .addOption(jsonOption())
      .addOption(new Option('--limit <n>', 'show only the newest N').argParser(positiveInteger('--limit')))
      .action(async (job: string, options) => {
        exit.code = await (await commands.query())[command](job, options, io);
      });
  }

  root
    .command('chaos')
    .description('crash-test a job: run it on a scratch store, SIGKILL it at random moments, resume until it completes, check its invariant')
    .argument('<job-file>', 'a file that default-exports defineJob({...}); an exported invariant(input) checks the end state')
    .addOption(paramOption())
    .addOption(new Option('--kills <n>', 'how many SIGKILLs').argParser(positiveInteger('--kills', 10_000)).default(10))
    .addOption(
      new Option('--seed <n>', 'seed of the kill schedule (printed in the report; the same seed gives the same schedule)').argParser(wholeNumber('--seed')),
    )
    .option('--stop-past-lease', 'also SIGSTOP the worker past its lease (about 1 kill in 5), let a second worker take over, then SIGCONT it')
    .option(
      '--check <script>',
      'a node script that checks the end state (exit 0: holds); CKPT_CHAOS_DIR, CKPT_CHAOS_STORE, CKPT_CHAOS_PARAMS tell it where, CKPT_CHAOS_HELD which holds are open',
    )
    .addOption(
      new Option(
        '--store <url>',
        "the kind of store the job really uses: postgres://… (a scratch schema there, also the job's search_path) or mysql://… (a scratch database on that server), created and dropped; default a scratch SQLite file",
      ),
    )
    .addOption(new Option('--every <n>', 'run the job checkpointing every N records').argParser(positiveInteger('--every')).conflicts('everyMs'))
    .addOption(new Option('--every-ms <ms>', 'run the job checkpointing every T ms of work').argParser(positiveInteger('--every-ms', MAX_MS)))
    .addOption(new Option('--concurrency <n>', 'records in flight at once in each run').argParser(positiveInteger('--concurrency')))
    .addOption(
      new Option('--lease-ms <ms>', 'lease length of each run (default: the run default; 1500 with --stop-past-lease)').argParser(
        positiveInteger('--lease-ms', MAX_MS),
      ),
    )
    .addOption(
      new Option('--approve <name>', 'when the job holds at approval point NAME (ctx.approval), pass it as chaos approvers, then go on (repeatable)')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--raise <kind=+N>', 'when the job holds at its limit on effects of this kind, raise it by N as chaos approvers, then go on (repeatable)')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option(
        '--expect-hold <name>',
        'the job is to end held at this hold (point:NAME or limit:KIND): check that it does under the kills and again when run once more (repeatable)',
      )
        .argParser(collect)
        .default([]),
    )
    .option('--keep', 'keep the scratch directory and store (they are always kept when a violation is found)')
    .addOption(jsonOption())
    .action(async (file: string, options) => {
      exit.code = await (await commands.chaos()).chaosCommand(file, options, io);
    });

  root
    .command('audit')
    .description(
      "check a job's hash-chained event log (--verify), or export it as evidence (--export): who ran what, when, which effects, which verify settled",
    )
    .argument('<job>', 'job name')
    .addOption(storeOption())
    .addOption(paramOption())
    .option('--verify', 'check the chain: exit 0 if intact, 1 naming the first bad event')
    .addOption(new Option('--export <format>', 'write every event with its link, secrets redacted').choices(['ndjson', 'csv']))
    .option('--out <file>', 'with --export: write to FILE instead of stdout')
    .action(async (job: string, options) => {
      exit.code = await (await commands.audit()).auditCommand(job, options, io);
    });

  root
    .command('approve')
    .description('approve what holds a job instance: raise a held effect limit (--raise kind=+N) or pass an approval point (--point NAME)')
    .argument('<job>', 'job name')
    .addOption(storeOption())
    .addOption(paramOption())
    .option('--raise <kind=+N>', 'raise the held limit on effects of this kind by N')
    .option('--point <name>', 'release the approval point of ctx.approval(name)')
    .option('--by <name>', 'who approves (recorded with the OS user in the audit log)')
    .option('--reason <text>', 'why (recorded in the audit log)')
    .addOption(jsonOption())
    .action(async (job: string, options) => {
      exit.code = await (await commands.approve()).approveCommand(job, options, io);
    });

  root
    .command('reset')
    .description('start a job instance over from the beginning on its next run (a new generation; history kept)')
    .argument('<job>', 'job name')
    .addOption(storeOption())
    .addOption(paramOption())
    .action(async (job: string, options) => {
      exit.code = await (await commands.query()).resetCommand(job, options, io);
    });
  return root;
}

/** Run the CLI; resolves to the exit code. User errors print one line, never a stack trace. */
export async function main(argv: string[], given: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const io = guardedIo(given);
  setIo(io);
  // An error line may quote a driver's or a job's message, URL and all: passwords are masked as store URLs are.
  const firstLine = (error: unknown) => redactText(errorLine(error), '***');
  const exit = { code: 0 };
  const root = program(io, exit);
  try {
    await root.parseAsync(argv, { from: 'user' });
    return exit.code;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
      // The help shown because no command was given (on stderr): a usage error, not a success.
      if (error.code === 'commander.help') return error.exitCode === 0 ? 0 : ExitCode.usage;
      if (error.code === 'commander.executeSubCommandAsync') return 1;
      const message = error.message.replace(/^error: /, '');
      const command = argv.find((arg) => !arg.startsWith('-'));
      const help = command && Object.hasOwn(moduleOf, command) ? `ckpt ${command} --help` : 'ckpt --help';
      io.stderr.write(`ckpt: ${firstLine(message)}; see ${help}\n`);
      return ExitCode.usage;
    }
    if (error instanceof CheckpointedError) {
      io.stderr.write(`ckpt: ${firstLine(error.message)}\n`);
      if (io.env.CKPT_DEBUG && error.cause instanceof Error && error.cause.stack) io.stderr.write(`${error.cause.stack}\n`);
      return error.exitCode;
    }
    // A store file (or its directory, or its side file) this user may not write: even a read-only
    // command records what it finds (a crashed worker reaped), so it is a setting to fix, exit 2.
    if (/attempt to write a readonly database|SQLITE_READONLY|readonly database/i.test(firstLine(error))) {
      io.stderr.write(
        "ckpt: the SQLite store is read-only for this user (the file, its -wal/-shm or .effects side files, or their directory); ckpt writes to it even for status (it records crashed workers it finds): make them writable, or run as the store's owner\n",
      );
      return ExitCode.usage;
    }
    // A page SQLite cannot read, met past the open (a store or .effects file truncated or
    // overwritten while its -wal, which the open reads first, survived): damage to restore from a
    // backup, exit 2 as the open's own "is damaged" is; never run on, nor retried as a failure.
    if (/database disk image is malformed|SQLITE_CORRUPT/i.test(firstLine(error))) {
      io.stderr.write(
        `ckpt: a file of the SQLite store is damaged (${firstLine(error)}): the store file or its .effects side file was truncated or overwritten; restore the store's files together from a backup (without its journal, every effect it recorded would run again)\n`,
      );
      return ExitCode.usage;
    }
    if (/database is locked|SQLITE_BUSY/i.test(firstLine(error))) {
      io.stderr.write(
        'ckpt: the SQLite store stayed locked by another process for too long (a job writing through ctx.tx holds its one write lock until each checkpoint); try again when it is done, or use a PostgreSQL store for concurrent jobs\n',
      );
      return ExitCode.failed;
    }
    io.stderr.write(`ckpt: unexpected error: ${firstLine(error)}${io.env.CKPT_DEBUG ? '' : ' (set CKPT_DEBUG=1 to see where)'}\n`);
    if (io.env.CKPT_DEBUG && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
    return ExitCode.failed;
  }
}
