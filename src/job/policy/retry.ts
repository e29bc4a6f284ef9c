import type { RetryOptions } from '../define.ts';

export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
  maxBackoffMs: number;
}

export function retryPolicy(options: RetryOptions | undefined, job: string): RetryPolicy {
  const policy = { attempts: options?.attempts ?? 1, backoffMs: options?.backoffMs ?? 100, maxBackoffMs: options?.maxBackoffMs ?? 10_000 };
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1) throw new TypeError(`job ${job}: retry.attempts must be a whole number ≥ 1`);
  if (!(policy.backoffMs >= 0) || !(policy.maxBackoffMs >= 0)) throw new TypeError(`job ${job}: retry.backoffMs and maxBackoffMs must be ≥ 0`);
  return policy;
}

/** Exponential backoff with "equal jitter": half the delay fixed, half random, so retries spread out. */
export function backoffDelay(policy: RetryPolicy, failedAttempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (failedAttempt - 1));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}
