import { setTimeout as sleep } from 'node:timers/promises';
import type { RateBucketStore } from '../../store/store.ts';

/** What an effect naming a `target` waits on before its `fn` runs. */
export interface RateLimiter {
  take(target: string): Promise<void>;
}

export interface RateLimit {
  perSecond: number;
  burst?: number;
}

/** The default burst: a twentieth of a second's calls, at least 1. */
export function defaultBurst(perSecond: number): number {
  return Math.max(1, Math.ceil(perSecond / 20));
}

/**
 * A job's fleet rate limits over the store's token buckets (one per target, shared by every
 * worker on the store). Tokens are taken a burst at a time, so the store sees one take per
 * `burst` calls, not one per call; a worker keeps what it took only briefly (a token kept long
 * and spent late would let calls bunch past the rate), at most one refill interval, and drops
 * what it did not spend in time. So in any second the target sees at most about `burst` more
 * calls than `perSecond`. One process's callers of a target queue for its tokens in order.
 */
export class FleetRateLimiter implements RateLimiter {
  readonly #store: RateBucketStore;
  readonly #limits: { [target: string]: RateLimit };
  readonly #local = new Map<string, { tokens: number; until: number; queue: Promise<void> }>();

  constructor(store: RateBucketStore, limits: { [target: string]: RateLimit }) {
    this.#store = store;
    this.#limits = limits;
  }

  take(target: string): Promise<void> {
    const limit = this.#limits[target];
    if (limit === undefined) return Promise.resolve();
    let local = this.#local.get(target);
    if (local === undefined) {
      local = { tokens: 0, until: 0, queue: Promise.resolve() };
      this.#local.set(target, local);
    }
    const state = local;
    const turn = state.queue.then(() => this.#next(target, limit, state));
    state.queue = turn.catch(() => undefined);
    return turn;
  }

  async #next(target: string, limit: RateLimit, local: { tokens: number; until: number }): Promise<void> {
    const burst = limit.burst ?? defaultBurst(limit.perSecond);
    for (;;) {
      if (local.tokens > 0 && performance.now() <= local.until) {
        local.tokens--;
        return;
      }
      const grant = await this.#store.takeTokens(target, limit.perSecond, burst, burst);
      if (grant.granted > 0) {
        local.tokens = grant.granted;
        local.until = performance.now() + Math.max(20, 1000 / limit.perSecond);
        continue;
      }
      // Jittered, so the fleet's workers do not all come back in the same millisecond.
      await sleep(Math.max(1, grant.waitMs) * (1 + Math.random() * 0.5));
    }
  }
}
