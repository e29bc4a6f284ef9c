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

  async once<T>(key: string, fn: () => T | Promise<T>, options: OnceOptions = {}): Promise<T | undefined> {
    if (typeof key !== 'string' || key === '') throw new TypeError('ctx.once needs a non-empty string key');
    for (let busy = this.#running.get(key); busy !== undefined; busy = this.#running.get(key)) await busy.catch(() => undefined);
    const work = this.#once(key, fn, options);
    this.#running.set(key, work);
    try {
      return await work;
    } finally {
      this.#running.delete(key);
    }
  }

  async #once<T>(key: string, fn: () => T | Promise<T>, options: OnceOptions): Promise<T | undefined> {
    const { store, scope, secretKey } = this.#input;
    const entry = await store.effect(scope, key);
    if (entry?.status === 'done') return unsealSecrets(entry.result, secretKey) as T | undefined;
    if (entry?.status === 'intent') {
      // A crash fell between the effect and its record: never replay blindly when we can ask.
      if (options.verify) {
        const happened = (await options.verify()) === true;
        await this.#input.emitInDoubt({
          shard: this.#input.shard,
          key,
          attempts: entry.attempts,
          resolution: happened ? 'verified-done' : 'verified-not-done',
        });
        if (happened) {
          await store.effectDone(scope, key, null);
          return undefined;
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
  async step<T>(position: unknown, name: string, fn: () => T | Promise<T>): Promise<T> {
    if (typeof name !== 'string' || name === '') throw new TypeError('ctx.step needs a non-empty name');
    return (await this.once(`step:${this.#input.shard}:${JSON.stringify(position)}:${name}`, fn)) as T;
  }

  idempotencyKey(position: unknown, name: string): string {
    const { job, scope, shard } = this.#input;
    const identity: JsonValue = [job, scope.instanceId, scope.generation, shard, JSON.stringify(position) ?? null, name];
    return `ckpt-${sha256(JSON.stringify(identity)).slice(0, 32)}`;
  }
}
