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
 * The rate the bucket refills at so that no one-second window holds more than `perSecond` calls.
 * A full bucket of `burst` tokens plus what refills within a second (less than the refill rate,
 * since a window is one second long, not more) must stay at `perSecond`: so the bucket refills at
 * `perSecond - burst + 1`, and the long-run rate is that (48 a second for 50 with the default
 * burst of 3). A plain bucket refilled at `perSecond` would let a second see `burst - 1` calls more.
 */
export function refillRate(perSecond: number, burst: number): number {
  return perSecond - burst + 1;
}

/** The callers of one target in this process, waiting for tokens in order. */
interface Waiters {
  queue: { resolve: () => void; reject: (error: unknown) => void }[];
  taking: boolean;
}

/**
 * A job's fleet rate limits over the store's token buckets (one per target, shared by every
 * worker on the store). The process's callers of a target wait in one queue, and one loop takes
 * tokens for as many of them as wait (at most `burst`) in one take: the store sees one take per
 * batch of calls, not one per call. A token is taken only for a caller already waiting and is
 * spent at once, never kept: a kept token spent late would let calls bunch past the rate. The
 * bucket refills at `refillRate`, so no one-second window sees more than `perSecond` calls start
 * (what the target receives adds the network's jitter). When the bucket is
 * empty the loop waits until it holds a token again, jittered so workers do not all return at once.
 */
export class FleetRateLimiter implements RateLimiter {
  readonly #store: RateBucketStore;
  readonly #limits: { [target: string]: RateLimit };
  readonly #waiters = new Map<string, Waiters>();

  constructor(store: RateBucketStore, limits: { [target: string]: RateLimit }) {
    this.#store = store;
    this.#limits = limits;
  }

  take(target: string): Promise<void> {
    // Own targets only: 'constructor' or 'toString' would find Object.prototype's, a rate of undefined.
    const limit = Object.hasOwn(this.#limits, target) ? this.#limits[target] : undefined;
    if (limit === undefined) return Promise.resolve();
    let waiters = this.#waiters.get(target);
    if (waiters === undefined) {
      waiters = { queue: [], taking: false };
      this.#waiters.set(target, waiters);
    }
    const state = waiters;
    return new Promise<void>((resolve, reject) => {
      state.queue.push({ resolve, reject });
      if (!state.taking) {
        state.taking = true;
        this.#serve(target, limit, state).catch((error: unknown) => {
          // The store failed: every caller waiting learns it (their effects fail, as a failed fn does).
          for (const waiting of state.queue.splice(0)) waiting.reject(error);
        });
      }
    });
  }

  async #serve(target: string, limit: RateLimit, waiters: Waiters): Promise<void> {
    const burst = limit.burst ?? defaultBurst(limit.perSecond);
    const refill = refillRate(limit.perSecond, burst);
    try {
      while (waiters.queue.length > 0) {
        const grant = await this.#store.takeTokens(target, refill, burst, Math.min(burst, waiters.queue.length));
        for (const waiting of waiters.queue.splice(0, grant.granted)) waiting.resolve();
        if (grant.granted === 0) await sleep(Math.max(1, grant.waitMs) * (1 + Math.random() * 0.5));
      }
    } finally {
      waiters.taking = false;
    }
  }
}
