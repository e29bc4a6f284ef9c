import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What the shard runs of this process do when the process is about to exit at once (a second
 * Ctrl-C, or a stop that outlived its drain deadline): write their exact progress, so the run
 * reads as interrupted with its rework known, not as a crash. Process-wide, as signals are.
 */
const lastWords = new Set<() => Promise<void>>();

/** Register a shard run's last words; the returned function unregisters them. */
export function onStopAtOnce(write: () => Promise<void>): () => void {
  lastWords.add(write);
  return () => lastWords.delete(write);
}

/** Let every running shard record how far it got, for at most `ms`, before the process exits. */
export async function recordStopAtOnce(ms: number): Promise<void> {
  const writes = Promise.allSettled([...lastWords].map((write) => write()));
  await Promise.race([writes, sleep(ms, undefined, { ref: false })]);
}
