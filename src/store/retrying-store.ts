import { setTimeout as sleep } from 'node:timers/promises';
import { StoreUnavailableError } from '../errors.ts';
import type { Store } from './store.ts';
import { describeDriverError, isTransientStoreError } from './transient.ts';

export interface StoreRetryOptions {
  /** How long one call keeps retrying an unreachable store before giving up, in ms. */
  retryMs: number;
  onRetry?: (info: { operation: string; attempt: number; delayMs: number; error: string }) => void;
}

/**
 * Calls that are safe to repeat: they read, or write under a condition (token, run id, status)
 * that a repeat cannot satisfy twice. Not repeated:
 * - commit: after a lost connection its outcome is unknown; the shard run ends instead and the
 *   next claim resumes from whichever checkpoint is in the store, so nothing is lost or doubled;
 * - rollback: a lost connection rolls back by itself;
 * - addDeadLetter, resolveDeadLetter: they write through the job's tx, which a lost connection
 *   took with it; the shard run ends and resumes instead;
 * - heartbeat: the next tick is its retry, and a late one must not look like a live worker;
 * - close, migrate: the caller decides.
 */
const notRepeated = new Set<PropertyKey>(['commit', 'rollback', 'addDeadLetter', 'resolveDeadLetter', 'heartbeat', 'close', 'migrate']);

/**
 * The store the runner uses: every repeatable call is retried with exponential backoff while the
 * store is unreachable (connection refused or reset, PostgreSQL restarting, SQLite busy), up to
 * `retryMs`; then StoreUnavailableError (exit 1) with what to do.
 */
export function retryingStore<S extends Store>(store: S, options: StoreRetryOptions): S {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      if (notRepeated.has(property)) return value.bind(target);
      return async (...args: unknown[]) => {
        const started = Date.now();
        for (let attempt = 1; ; attempt++) {
          try {
            return await value.apply(target, args);
          } catch (error) {
            if (!isTransientStoreError(error)) throw error;
            const waited = Date.now() - started;
            // The driver's own words: the store's wrapper would repeat the URL and the advice.
            const cause = describeDriverError(error instanceof StoreUnavailableError && error.cause !== undefined ? error.cause : error);
            if (waited >= options.retryMs) {
              throw new StoreUnavailableError(
                `the store ${target.location} stayed unreachable for ${Math.round(waited / 1000)} s (${String(property)}: ${cause}); ` +
                  'no checkpointed work is lost: check the database, then run again to resume (--store-retry-ms waits longer)',
                { cause: error },
              );
            }
            const delayMs = Math.min(2000, 50 * 2 ** attempt, options.retryMs - waited) * (0.75 + Math.random() / 2);
            options.onRetry?.({ operation: String(property), attempt, delayMs: Math.round(delayMs), error: cause });
            await sleep(delayMs);
          }
        }
      };
    },
  });
}
