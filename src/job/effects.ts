import type { EventMap } from '../events.ts';
import { type JsonValue, sha256 } from '../json.ts';
import { sealSecrets, unsealSecrets } from '../secret.ts';
import type { EffectScope, Store } from '../store/store.ts';
import type { OnceOptions } from './define.ts';

export interface EffectsInput {
  store: Store;
  scope: EffectScope;
  job: string;
  shard: string;
  secretKey: () => Buffer;
  emitInDoubt: (data: EventMap['effect:in-doubt']) => Promise<void>;
  /** True once another worker took the shard: a fenced-out worker must start no effect. */
  leaseLost?: () => boolean;
}

/** The generation number of instance-scoped effect keys: one no generation of a run has. */
const INSTANCE_GENERATION = 0;

/**
 * `ctx.once`, `ctx.step` and `ctx.idempotencyKey` of one shard run, over the store's effect
 * journal. The journal is written outside the chunk transaction and durably at once (intent
 * before `fn`, completion right after), so a crash that rolls the chunk back never forgets
 * that an effect ran: the only window of doubt is between `fn` returning and its completion.
 */
export class Effects {
  readonly #input: EffectsInput;
  /** Keys being run in this process: a second caller waits, then reads the journal. */
  readonly #running = new Map<string, Promise<unknown>>();

  constructor(input: EffectsInput) {
    this.#input = input;
  }

  async once<T>(key: string, fn: () => T | Promise<T>, options: OnceOptions<T> = {}): Promise<T | undefined> {
    if (typeof key !== 'string' || key === '') throw new TypeError('ctx.once needs a non-empty string key');
    if (options.scope !== undefined && options.scope !== 'generation' && options.scope !== 'instance') {
      throw new TypeError(`ctx.once: scope must be 'generation' or 'instance' (got ${JSON.stringify(options.scope)})`);
    }
    // Instance-scoped keys share one name space with generation-scoped ones only through the
    // scope's generation number, so keep them apart in the in-process lock too.
    const lockKey = `${options.scope ?? 'generation'}:${key}`;
    for (let busy = this.#running.get(lockKey); busy !== undefined; busy = this.#running.get(lockKey)) await busy.catch(() => undefined);
    const work = this.#once(key, fn, options);
    this.#running.set(lockKey, work);
    try {
      return await work;
    } finally {
      this.#running.delete(lockKey);
    }
  }

  async #once<T>(key: string, fn: () => T | Promise<T>, options: OnceOptions<T>): Promise<T | undefined> {
    const { store, secretKey } = this.#input;
    // An instance-scoped key lives in generation 0, which no run ever has (generations count
    // from 1): `--rerun` and `reset` start generation n+1 and never reach it.
    const scope = options.scope === 'instance' ? { instanceId: this.#input.scope.instanceId, generation: INSTANCE_GENERATION } : this.#input.scope;
    const entry = await store.effect(scope, key);
    if (entry?.status === 'done') return unsealSecrets(entry.result, secretKey) as T | undefined;
    if (entry?.status === 'intent') {
      // A crash fell between the effect and its record: never replay blindly when we can ask.
      if (options.verify) {
        const answer = await options.verify();
        const happened = answer === true || (answer !== null && typeof answer === 'object' && 'result' in answer);
        await this.#input.emitInDoubt({
          shard: this.#input.shard,
          key,
          attempts: entry.attempts,
          resolution: happened ? 'verified-done' : 'verified-not-done',
        });
        if (happened) {
          // The verified result is recorded like fn's, so later replays return it too.
          const result = typeof answer === 'object' ? answer.result : undefined;
          await store.effectDone(scope, key, result === undefined ? null : sealSecrets(result, secretKey));
          return result;
        }
      } else {
        await this.#input.emitInDoubt({ shard: this.#input.shard, key, attempts: entry.attempts, resolution: 'run-again' });
      }
    }
    if (this.#input.leaseLost?.()) throw new Error(`effect ${key} not started: this worker lost its lease on shard ${this.#input.shard}`);
    await store.effectIntent(scope, key);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      // fn reported failure: treated as "did not happen", so a retry runs it again.
      await store.effectFailed(scope, key);
      throw error;
    }
    await store.effectDone(scope, key, sealSecrets(result, secretKey));
    return result;
  }

  /** A step is an effect keyed by the record's position and the step's name. */
  async step<T>(position: unknown, name: string, fn: () => T | Promise<T>, options?: OnceOptions<T>): Promise<T> {
    if (typeof name !== 'string' || name === '') throw new TypeError('ctx.step needs a non-empty name');
    return (await this.once(`step:${this.#input.shard}:${JSON.stringify(position)}:${name}`, fn, options)) as T;
  }

  idempotencyKey(position: unknown, name: string): string {
    const { job, scope, shard } = this.#input;
    const identity: JsonValue = [job, scope.instanceId, scope.generation, shard, JSON.stringify(position) ?? null, name];
    return `ckpt-${sha256(JSON.stringify(identity)).slice(0, 32)}`;
  }
}
