import type { Rework } from '../policy/progress-mark.ts';
import type { CheckpointBoundary } from '../record/checkpoint-boundary.ts';
import type { RecordLoop } from '../record/record-loop.ts';

/**
 * What a shard run redoes of earlier runs' work past its checkpoint (`reworkAfter`), and how long
 * redoing it takes: timed from the run's start until the shard total passes where the furthest
 * earlier run got to, checkpoint time excluded. The run's start measures it, its heartbeat's
 * stats and its result report it, its end clamps it once the shard's size is known.
 */
export class ReworkClock {
  readonly redo: Rework;
  /** Records redone: the earlier runs' reach past the checkpoint, clamped by the shard's size once it completes. */
  records: number;
  /** Time spent redoing them, ms; undefined while the run is still redoing them. */
  ms: number | undefined;
  /** The shard total the run resumed from (its checkpoint's count). */
  readonly #from: number;
  readonly #started: number;

  constructor(redo: Rework, from: number, started: number) {
    this.redo = redo;
    this.records = redo.records;
    this.ms = redo.records > 0 ? undefined : 0;
    this.#from = from;
    this.#started = started;
  }

  /** Stops the clock when the loop's shard total passes where the earlier run got to. */
  watch(loop: RecordLoop, boundary: CheckpointBoundary): void {
    if (this.ms !== undefined) return;
    loop.at(this.#from + this.redo.records, () => {
      this.ms = performance.now() - this.#started - boundary.checkpointMs;
    });
  }

  /** Stops the clock now if the loop ended before passing that point. */
  stop(boundary: CheckpointBoundary): void {
    this.ms ??= performance.now() - this.#started - boundary.checkpointMs;
  }

  /** The shard completed at `processed`: an earlier run cannot have done more past the checkpoint than there was. */
  clamp(processed: number): void {
    this.records = Math.min(this.records, Math.max(0, processed - this.#from));
  }

  /** The run's stats while it runs (`ckpt status --json`): the rework as measured so far. */
  stats(): { reworkMs: number | null; reworkAtMost: boolean; reworkMarkStep: number; reworkFromRun: number | null } | undefined {
    const { redo } = this;
    return redo.records > 0 ? { reworkMs: this.ms ?? null, reworkAtMost: redo.atMost, reworkMarkStep: redo.markStep, reworkFromRun: redo.fromRun } : undefined;
  }

  /** The rework as the run's result says it. */
  result(): { rework: number; reworkAtMost?: boolean; reworkMarkStep?: number; reworkMs: number } {
    return {
      rework: this.records,
      ...(this.records > 0 ? { reworkAtMost: this.redo.atMost, reworkMarkStep: this.redo.markStep } : {}),
      reworkMs: this.ms ?? 0,
    };
  }
}
