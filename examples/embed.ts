// Embedding a job in your own program, without the `ckpt` CLI: open a store, run the job with
// an event listener and a graceful stop on SIGINT/SIGTERM, act on the summary, close the store.
// The job totals the squares of 0..N-1 and writes each square to a table through ctx.tx, so
// every row exists exactly once however often the program is stopped and started again.
//
//   node examples/embed.ts [store-url]          # default sqlite:.ckpt/embed.db; run it again to resume
//   EMBED_RECORDS=1000000 EMBED_SPIN_US=20 node examples/embed.ts   # slow enough to press Ctrl-C
//   node examples/embed.ts --rerun              # start over as a new generation
import { CheckpointedError, defineJob, openStore, type RunEvent, range, runJob, shutdownOnSignals } from 'checkpointed';

const records = Number(process.env.EMBED_RECORDS ?? 20_000);
const spinUs = Number(process.env.EMBED_SPIN_US ?? 0);

const squares = defineJob<number, { upTo: number }, { sum: number }>({
  name: 'embed-squares',
  params: () => ({ upTo: records }),
  source: ({ params }) => range(0, params.upTo),
  initialState: () => ({ sum: 0 }),
  checkpoint: { every: 5_000 },
  async setup({ tx }) {
    await tx.query('CREATE TABLE IF NOT EXISTS embed_squares (n BIGINT PRIMARY KEY, square BIGINT NOT NULL)');
  },
  async process(n, ctx) {
    const until = performance.now() + spinUs / 1000;
    while (performance.now() < until) {
      // stands for real work
    }
    await ctx.tx.sql`INSERT INTO embed_squares (n, square) VALUES (${n}, ${n * n})`;
    ctx.state.sum += n * n;
  },
});

/** The program's own reporting, from the same events the CLI's progress bar reads. */
function report(event: RunEvent): void {
  if (event.type === 'run:resume') console.log(`resuming at ${JSON.stringify(event.data.position)} (${event.data.processed} done)`);
  if (event.type === 'checkpoint') console.log(`checkpoint at ${JSON.stringify(event.data.position)}: ${event.data.processed} done`);
  if (event.type === 'record:error') console.error(`record ${JSON.stringify(event.data.position)} failed: ${event.data.error}`);
}

async function main(argv: string[]): Promise<number> {
  const rerun = argv.includes('--rerun');
  const url = argv.find((arg) => !arg.startsWith('--')) ?? 'sqlite:.ckpt/embed.db';
  // A first SIGINT/SIGTERM aborts `shutdown.signal`: runJob stops intake, lets records in flight
  // finish and saves a checkpoint. A second one means "now": the last checkpoint is kept.
  const shutdown = shutdownOnSignals({
    onFirst: (signal) => console.error(`${signal}: finishing records in flight, then saving a checkpoint`),
    onForce: () => process.exit(3),
  });
  const store = await openStore(url);
  try {
    const summary = await runJob(squares, { store, rerun, signal: shutdown.signal, onEvent: report });
    if (summary.outcome === 'completed') {
      console.log(`completed ${summary.job}: ${summary.records} records in ${Math.round(summary.durationMs)} ms, ${summary.checkpoints} checkpoints`);
    } else if (summary.outcome === 'already-complete') {
      console.log(`${summary.job} is already complete (generation ${summary.generation}); pass --rerun to run it again`);
    } else if (summary.outcome === 'interrupted') {
      console.log(`interrupted at ${JSON.stringify(summary.shards[0]?.position ?? null)}; run again to resume`);
    } else {
      console.error(`failed: ${summary.error}`);
    }
    return summary.exitCode; // 0 completed, 1 failed, 3 interrupted: the CLI's codes
  } catch (error) {
    // Refusals and configuration errors (a live worker holds the instance, drift, a bad store
    // URL…) are CheckpointedErrors with a one-line message and the CLI's exit code.
    if (error instanceof CheckpointedError) {
      console.error(error.message);
      return error.exitCode;
    }
    throw error;
  } finally {
    shutdown.dispose();
    await store.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
