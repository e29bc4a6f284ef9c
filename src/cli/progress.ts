import type { RunEvent } from '../events.ts';
import { describeCorrupt, formatAge, formatCount, formatMs } from './format.ts';

/**
 * A one-line progress bar on a terminal: count, rate, ETA when the source knows its size, and
 * the age of the last checkpoint. Log lines are printed above it.
 */
export class ProgressBar {
  readonly #out: NodeJS.WriteStream;
  readonly #job: string;
  readonly #shards = new Map<string, { processed: number; total: number | undefined }>();
  #rate = 0;
  #lastCheckpointAt: number | null = null;
  #drawn = false;
  #lastDraw = 0;

  constructor(out: NodeJS.WriteStream, job: string) {
    this.#out = out;
    this.#job = job;
  }

  onEvent(event: RunEvent): void {
    switch (event.type) {
      case 'run:start':
        this.#shards.set(event.data.shard, { processed: 0, total: event.data.total });
        break;
      case 'run:resume':
        this.#shards.set(event.data.shard, { processed: event.data.processed, total: event.data.total });
        this.#print(
          `resuming ${event.data.shard} from ${JSON.stringify(event.data.position)} (${formatCount(event.data.processed)} done${event.data.rework > 0 ? `, about ${formatCount(event.data.rework)} to redo` : ''})`,
        );
        break;
      case 'progress': {
        const shard = this.#shards.get(event.data.shard);
        if (shard) shard.processed = event.data.processed;
        this.#rate = event.data.rate;
        this.#lastCheckpointAt = event.data.lastCheckpointAt;
        break;
      }
      case 'checkpoint': {
        const shard = this.#shards.get(event.data.shard);
        if (shard) shard.processed = event.data.processed;
        this.#lastCheckpointAt = event.at;
        break;
      }
      case 'run:crashed':
        this.#print(`found run ${event.data.runId} of ${event.data.worker} crashed (shard ${event.data.shard})`);
        break;
      case 'checkpoint:corrupt':
        this.#print(describeCorrupt(event.data));
        break;
      case 'shard:lost':
        this.#print(`lost shard ${event.data.shard}: ${event.data.reason}`);
        break;
      case 'record:error':
        this.#print(`record at ${JSON.stringify(event.data.position)} failed: ${event.data.error}`);
        break;
      case 'record:retry':
        this.#print(
          `record at ${JSON.stringify(event.data.position)} failed (${event.data.error}); retry ${event.data.attempt} in ${formatMs(event.data.delayMs)}`,
        );
        break;
      case 'record:dead':
        this.#print(
          `record at ${JSON.stringify(event.data.position)} dead-lettered after ${event.data.attempts} attempts: ${event.data.error} (${event.data.deadLetters}/${event.data.limit}; see ckpt dlq)`,
        );
        break;
      case 'effect:in-doubt':
        this.#print(
          `effect ${event.data.key} was in doubt (a crash fell between it and its record): ${event.data.resolution === 'run-again' ? 'no verify hook, ran it again' : event.data.resolution === 'verified-done' ? 'verify says it happened, not run again' : 'verify says it did not happen, ran it'}`,
        );
        break;
      case 'effect:waiting':
        this.#print(
          `effect ${event.data.key} is in flight on another worker (${event.data.holderWorker}, run ${event.data.holderRunId}, shard ${event.data.holderShard}): waiting ${formatMs(event.data.waitedMs)} so far for its result, not running it again`,
        );
        break;
      case 'effect:late-completion':
        this.#print(
          `effect ${event.data.key} completed after this worker's lease was taken (run ${event.data.holderRunId ?? '?'} holds shard ${event.data.shard}): ${event.data.kept === 'first' ? 'the journal keeps the result recorded first' : 'recorded over its intent'}`,
        );
        break;
      case 'drift':
        this.#print(`${event.data.shard} no longer matches its checkpoint: ${event.data.changes.join('; ')} (--on-drift ${event.data.resolution})`);
        break;
      case 'store:retry':
        if (event.data.attempt === 1) this.#print(`store unreachable (${event.data.error}); retrying ${event.data.operation}`);
        break;
      case 'log':
        this.#print(`[${event.data.level}] ${event.data.message}`);
        break;
      default:
        break;
    }
    const now = Date.now();
    if (now - this.#lastDraw > 100) this.#draw(now);
  }

  #print(line: string): void {
    this.clear();
    this.#out.write(`${line}\n`);
  }

  #draw(now: number): void {
    this.#lastDraw = now;
    let processed = 0;
    let total: number | undefined = 0;
    for (const shard of this.#shards.values()) {
      processed += shard.processed;
      total = total === undefined || shard.total === undefined ? undefined : total + shard.total;
    }
    const width = 24;
    let bar = '';
    let eta = '';
    if (total !== undefined && total > 0) {
      const fraction = Math.min(1, processed / total);
      const filled = Math.round(fraction * width);
      bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${String(Math.floor(fraction * 100)).padStart(3)}%  `;
      if (this.#rate > 0) eta = `  ETA ${formatMs((1000 * (total - processed)) / this.#rate)}`;
    }
    const count = total ? `${formatCount(processed)}/${formatCount(total)}` : formatCount(processed);
    const shards = this.#shards.size > 1 ? ` [${this.#shards.size} shards]` : '';
    const line = `${this.#job}${shards} ${bar}${count}  ${formatCount(this.#rate)} rec/s${eta}  checkpoint ${formatAge(this.#lastCheckpointAt, now)}`;
    this.#out.write(`\r\x1b[2K${line.slice(0, (this.#out.columns || 120) - 1)}`);
    this.#drawn = true;
  }

  clear(): void {
    if (this.#drawn) this.#out.write('\r\x1b[2K');
    this.#drawn = false;
  }
}
