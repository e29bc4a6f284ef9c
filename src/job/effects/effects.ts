import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { FencedError, firstLine, HeldError } from '../../errors.ts';
import type { EventMap, EventType } from '../../events.ts';
import { type JsonObject, type JsonValue, sha256 } from '../../json.ts';
import { hasLoneSurrogate } from '../../lone-surrogate.ts';
import { sealSecrets, unsealSecrets } from '../../secret.ts';
import { shellWord } from '../../shell-word.ts';
import { storableError } from '../../store/rows.ts';
import type { EffectEntry, EffectLimit, EffectScope, JournalFence, JournalLimited, JournalWrite, Store } from '../../store/store.ts';
import type { OnceOptions } from '../define.ts';
import { type EffectGuard, plannedEffect } from '../guard/effect-guard.ts';
import { describeApprovals } from '../guard/hold-text.ts';
import type { RateLimiter } from '../guard/rate-limiter.ts';
import { isDeadLocalWorker } from '../workers.ts';
import { JournalQueue } from './journal-queue.ts';

export interface EffectsInput {
  store: Store;
  scope: EffectScope;
  job: string;
  shard: string;
  /** The run the events are recorded under (null: a dead-letter retry, which has none). */
  runId: number | null;
  secretKey: () => Buffer;
  /** Tells the run's listeners of an event the journal has just stored (they are not stored again). */
  notify: <K extends EventType>(type: K, data: EventMap[K]) => void;
  /** True once another worker took the shard: a fenced-out worker must start no effect. */
  leaseLost?: () => boolean;
  /**
   * The shard run's lease: every journal write carries it, and the store refuses an intent
   * whose token is stale (FencedError: `fn` never starts) and never lets a stale completion
   * overwrite another's (see fenceBatch). A dead-letter retry is fenced by the shard lease it took
   * outside any run (LeaseStore.leaseShard); absent (`ckpt plan`, which performs no effect): unfenced.
   */
  fence?: JournalFence;
  /** A plan run records every effect instead; an apply holds those its plan lacks (see EffectGuard). */
  guard?: EffectGuard;
  /** The job's fleet rate limits: an effect naming a `target` takes a token before `fn`. */
  rateLimiter?: RateLimiter;
  /** The job's effect limits and approvals (see EffectGuards); absent: no limit, one approver. */
  guards?: EffectGuards;
}

/** What a shard run's effects are held by: the job's `limits` and `approvals`, resolved. */
export interface EffectGuards {
  /** The most effects of each kind the instance generation may start, before approvals raise it. */
  limits: ReadonlyMap<string, number>;
  /** Distinct approvers a hold needs. */
  approvals: number;
  /** `ckpt approve <job> [--param k=v…]`: how the command that releases a hold starts. */
  approveCommand: string;
}

/** Where a record keeps the journal writes it must see durable before it counts as finished. */
export interface DeferredWrites {
  defer(write: Promise<unknown>): void;
}

/** How long a claim that met another live run's intent first waits before it reads the entry again; doubled each time up to WRITER_POLL_MAX_MS. */
const WRITER_POLL_MS = 10;
const WRITER_POLL_MAX_MS = 250;
/** How long such a wait goes before it is told (`effect:waiting`): an operator sees what the record waits on. */
const WRITER_TELL_MS = 5000;

/** The longest approval point name: its hold, `point:<name>`, fits the 255 characters every store holds. */
const MAX_POINT_NAME = 255 - 'point:'.length;

/** The generation number of instance-scoped effect keys: one no generation of a run has. */
const INSTANCE_GENERATION = 0;

/**
 * The key whose `fn` or `verify` is running, in whatever it calls. Effects do not nest: an `fn`
 * that calls ctx.once holds its own key's intent while it waits for the other key, so two workers
 * (or two records) that nest shared keys in another order would each wait for the other's intent
 * for as long as both leases live, and a key nested in itself would wait for itself. A nested
 * call is refused before it claims anything, naming both keys.
 */
const runningEffect = new AsyncLocalStorage<string>();

/** #known's answer when another run settled or started the in-doubt intent first: claim the key again. */
const CLAIM_AGAIN = Symbol('claim again');

/**
 * `ctx.once`, `ctx.step` and `ctx.idempotencyKey` of one shard run, over the store's effect
 * journal. The journal is written outside the chunk transaction, in group commits
 * (JournalQueue): an intent is durable before `fn` starts; a completion is durable before the
 * record that made it counts as finished, so a crash that rolls the chunk back never forgets
 * that an effect ran: the only window of doubt is between `fn` returning and its completion.
 * Every decision (start, done, failed, in doubt, verify's answer) is appended to the audit chain
 * in the same transaction as the journal entry it leads to, so no crash can separate the two:
 * an `fn` never runs without its `effect:start` stored, and a key in doubt is never acted on
 * before its `effect:in-doubt` is.
 */
export class Effects {
  readonly #input: EffectsInput;
  /** Keys being run in this process: a second caller waits, then reads the journal. */
  readonly #running = new Map<string, Promise<unknown>>();

  /** Every journal write of this shard run goes through it: concurrent records' writes commit together. */
  readonly #queue: JournalQueue;

  /**
   * The hold this shard run met (a limit reached, an approval point not yet passed), if any. It
   * outlives a `catch` in the job's code: from then on no effect starts in this run (each call
   * throws it again), and the run commits no further checkpoint (CheckpointBoundary asks `held`),
   * so a record that swallowed the error is not counted done without its effect.
   */
  #heldBy: HeldError | undefined;

  constructor(input: EffectsInput) {
    this.#input = input;
    this.#queue = new JournalQueue(input.store, input.scope.instanceId, input.fence);
  }

  /**
   * `record`, when given, takes the completion's durability: `once` returns as soon as `fn` has
   * and its completion is queued, and the record waits for it before it counts as finished (see
   * RecordContext.durable). Without it, `once` returns when the completion is durable.
   */
  /** The hold this shard run met, if any (see #heldBy). */
  get held(): HeldError | undefined {
    return this.#heldBy;
  }

  async once<T>(key: string, fn: () => T | Promise<T>, options: OnceOptions<T> = {}, record?: DeferredWrites): Promise<T | undefined> {
    if (typeof key !== 'string' || key === '') throw new TypeError('ctx.once needs a non-empty string key');
    // Stored as UTF-8, a lone surrogate becomes U+FFFD: 'x\ud83d' and 'x\ud83c' would be one key,
    // and the second effect would return the first's result without running (SQLite).
    if (hasLoneSurrogate(key)) {
      throw new TypeError(
        `the effect key ${JSON.stringify(key)} holds a lone surrogate (half of a UTF-16 pair, as a string cut mid-emoji leaves), which no store keeps apart from other such keys; build the key from the record's id, or from text not cut mid-character`,
      );
    }
    const outer = runningEffect.getStore();
    if (outer !== undefined) {
      throw new TypeError(
        `ctx.once(${JSON.stringify(key)}) called inside the fn of ctx.once(${JSON.stringify(outer)}): effects do not nest (two workers nesting shared keys in another order would wait for each other forever); call them one after the other in process()`,
      );
    }
    if (this.#heldBy !== undefined) throw this.#heldBy;
    if (options.scope !== undefined && options.scope !== 'generation' && options.scope !== 'instance') {
      throw new TypeError(`ctx.once: scope must be 'generation' or 'instance' (got ${JSON.stringify(options.scope)})`);
    }
    // Instance-scoped keys share one name space with generation-scoped ones only through the
    // scope's generation number, so keep them apart in the in-process lock too.
    const guard = this.#input.guard;
    if (guard !== undefined && (await guard.admit(plannedEffect(this.#input.shard, key, options))) === 'recorded') return undefined;
    const lockKey = `${options.scope ?? 'generation'}:${key}`;
    for (let busy = this.#running.get(lockKey); busy !== undefined; busy = this.#running.get(lockKey)) await busy.catch(() => undefined);
    const work = this.#once(key, fn, options, record);
    this.#running.set(lockKey, work);
    try {
      return await work;
    } finally {
      this.#running.delete(lockKey);
    }
  }

  async #once<T>(key: string, fn: () => T | Promise<T>, options: OnceOptions<T>, record: DeferredWrites | undefined): Promise<T | undefined> {
    // An instance-scoped key lives in generation 0, which no run ever has (generations count
    // from 1): `--rerun` and `reset` start generation n+1 and never reach it. Its events are
    // chained with its journal entries, so they too are recorded under generation 0.
    const scope = options.scope === 'instance' ? { instanceId: this.#input.scope.instanceId, generation: INSTANCE_GENERATION } : this.#input.scope;
    const { shard } = this.#input;
    if (this.#input.leaseLost?.()) {
      // A fenced-out worker starts nothing, but still answers a key that is done.
      const entry = await this.#input.store.effect(scope, key);
      const known = await this.#known(scope, key, fn, options, entry, record);
      // Never: a fenced-out worker starts nothing, so it writes no intent to lose.
      if (known === CLAIM_AGAIN) throw new Error(`effect ${key} not started: this worker lost its lease on shard ${shard}`);
      return known;
    }
    const limit = this.#limit(key, options);
    const { runId } = this.#input;
    for (;;) {
      // The common case in one durable write: the intent, unless the key already has an entry
      // (then nothing is written, and the entry decides, as below).
      const start = new Decisions(this.#input).add('effect:start', { shard, key, attempt: 1 });
      const entry = await start.write(this.#queue, { kind: 'claim', scope, key, events: [], runId, ...(limit === undefined ? {} : { limit }) });
      if (entry === undefined) return this.#run(scope, key, fn, record, options.target, limit);
      if ('limited' in entry) return this.#held(key, entry);
      const settled = await this.#whileWriterLives(scope, key, entry);
      // Forgotten meanwhile (the other run's fn failed): claimed again, as if new. Settled first
      // by another run that found it in doubt too: claimed again, so this one waits for that one.
      if (settled === undefined) continue;
      const known = await this.#known(scope, key, fn, options, settled, record);
      if (known !== CLAIM_AGAIN) return known;
    }
  }

  /**
   * An intent another run wrote is in flight while that run holds its lease (two shards that
   * share a key, on two workers): not in doubt, so neither `verify` nor `fn` may act on it yet.
   * Waits, reading the entry again, until it is done (its result is returned as this run's),
   * forgotten (undefined: claim again), or its writer is gone: its lease expired, another run
   * took its shard, or its process is dead on this machine; only then is the intent in doubt.
   * An entry of this run, or of no known run, is answered at once.
   */
  async #whileWriterLives(scope: EffectScope, key: string, found: EffectEntry): Promise<EffectEntry | undefined> {
    const { store, runId, shard } = this.#input;
    let entry: EffectEntry | undefined = found;
    let pause = WRITER_POLL_MS;
    const since = performance.now();
    let told = false;
    while (entry !== undefined && entry.status === 'intent' && entry.runId !== null && entry.runId !== runId) {
      // Gone once its lease expired (ended now, so that it can write nothing over what this run
      // does should its process wake), or the run ended, or its process is dead here.
      const writer = await store.liveRunOrFence(entry.runId);
      if (writer === undefined || isDeadLocalWorker(writer.worker, writer.node)) return entry;
      if (this.#input.leaseLost?.()) throw new Error(`effect ${key} not started: this worker lost its lease on shard ${shard}`);
      const waitedMs = Math.round(performance.now() - since);
      if (!told && waitedMs >= WRITER_TELL_MS) {
        told = true;
        this.#input.notify('effect:waiting', { shard, key, holderRunId: writer.runId, holderShard: writer.shard, holderWorker: writer.worker, waitedMs });
      }
      await sleep(pause);
      pause = Math.min(pause * 2, WRITER_POLL_MAX_MS);
      entry = await store.effect(scope, key);
    }
    return entry;
  }

  /**
   * The limit `key` counts against: its `kind` option, else the key's prefix before its first
   * `:`, if the job declares a limit of that kind; else none (the effect is not counted).
   */
  #limit(key: string, options: OnceOptions<unknown>): EffectLimit | undefined {
    const limits = this.#input.guards?.limits;
    if (limits === undefined || limits.size === 0) return undefined;
    const kind = options.kind ?? (key.includes(':') ? key.slice(0, key.indexOf(':')) : undefined);
    const max = kind === undefined ? undefined : limits.get(kind);
    if (kind === undefined || max === undefined) return undefined;
    return { kind, max, generation: this.#input.scope.generation };
  }

  /** A claim the store refused at its limit: the instance is held there, and this record stops before `fn`. */
  async #held(key: string, refused: JournalLimited): Promise<never> {
    const { kind, used, max, raised } = refused.limited;
    const command = `${this.#guards().approveCommand} --raise ${shellWord(`${kind}=+N`)} --by NAME --reason TEXT`;
    const hold = await this.#hold(`limit:${kind}`, 'limit', { kind, used, max, raised }, { kind, used, max, raised, next: command });
    this.#heldBy ??= new HeldError(
      `held: the limit on ${kind} effects is reached (${used} of ${max + raised} started) before ${key}; ` +
        `${describeApprovals(hold)}; approve with: ${command}, then run again`,
      `limit:${kind}`,
      { shard: this.#input.shard },
    );
    throw this.#heldBy;
  }

  #guards(): EffectGuards {
    return this.#input.guards ?? { limits: new Map(), approvals: 1, approveCommand: `ckpt approve ${this.#input.job}` };
  }

  /** Opens (or finds open) the hold `name`, with its `guard:held` event. */
  async #hold(name: string, kind: 'limit' | 'point', detail: JsonObject, told: Omit<EventMap['guard:held'], 'shard' | 'hold' | 'round' | 'required'>) {
    const { store, scope, shard, runId } = this.#input;
    const required = this.#guards().approvals;
    const data: EventMap['guard:held'] = { shard, hold: name, round: 0, required, ...told };
    const { hold, opened } = await store.hold(scope.instanceId, scope.generation, { name, kind, detail: { ...detail, shard, next: told.next }, required }, [
      { type: 'guard:held', at: Date.now(), runId, shard, data: { ...data } as unknown as JsonObject },
    ]);
    if (opened) this.#input.notify('guard:held', { ...data, round: hold.round });
    return hold;
  }

  /**
   * `ctx.approval(name)`: passes once the point's hold of this generation was released by
   * `ckpt approve --point`; else holds the instance there (HeldError: the shard stops before
   * whatever follows).
   */
  async approval(name: string, options: { summary?: string } = {}): Promise<void> {
    if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) throw new TypeError("ctx.approval needs a name of letters, digits, '.', '-' or '_'");
    // Its hold is named `point:<name>`, a key every store holds up to 255 characters (MySQL's holds.name).
    if (name.length > MAX_POINT_NAME) throw new TypeError(`ctx.approval needs a name of at most ${MAX_POINT_NAME} characters (got ${name.length})`);
    if (this.#heldBy !== undefined) throw this.#heldBy;
    // A plan run holds nothing: it goes past the point to list what follows (its apply holds here).
    if (this.#input.guard?.recordsOnly === true) return;
    const { store, scope } = this.#input;
    const found = (await store.holds(scope.instanceId, scope.generation)).find((hold) => hold.name === `point:${name}`);
    if (found !== undefined && found.releasedAt !== null) return;
    const command = `${this.#guards().approveCommand} --point ${name} --by NAME --reason TEXT`;
    const summary = options.summary === undefined ? undefined : String(options.summary);
    const detail: JsonObject = summary === undefined ? {} : { summary };
    const hold = await this.#hold(`point:${name}`, 'point', detail, { ...(summary === undefined ? {} : { summary }), next: command });
    this.#heldBy ??= new HeldError(`held at approval point ${name}; ${describeApprovals(hold)}; approve with: ${command}, then run again`, `point:${name}`, {
      shard: this.#input.shard,
    });
    throw this.#heldBy;
  }

  /**
   * A key that has an entry (or a fenced-out worker): done, in doubt, or never started.
   * CLAIM_AGAIN: another run settled or started the in-doubt intent first.
   */
  async #known<T>(
    scope: EffectScope,
    key: string,
    fn: () => T | Promise<T>,
    options: OnceOptions<T>,
    entry: EffectEntry | undefined,
    record: DeferredWrites | undefined,
  ): Promise<T | undefined | typeof CLAIM_AGAIN> {
    const { secretKey, shard } = this.#input;
    if (entry?.status === 'done') return unsealSecrets(entry.result, secretKey) as T | undefined;
    const decided = new Decisions(this.#input);
    if (entry?.status === 'intent') {
      // A crash fell between the effect and its record: never replay blindly when we can ask.
      if (options.verify) {
        const answer = await runningEffect.run(key, options.verify);
        const happened = answer === true || (answer !== null && typeof answer === 'object' && 'result' in answer);
        // Only `false` says it did not happen: a truthy row, 'true' or 1 from an API, or a verify
        // that forgot to return (undefined), ran the effect again. The key stays in doubt instead.
        if (!happened && answer !== false) {
          throw new TypeError(
            `verify of ${key} answered ${describeAnswer(answer)}: it must answer true (it happened), false (it did not) or { result }; the effect stays in doubt and was not run again`,
          );
        }
        decided.add('effect:in-doubt', { shard, key, attempts: entry.attempts, resolution: happened ? 'verified-done' : 'verified-not-done' });
        decided.add('effect:verified', { shard, key, done: happened });
        if (happened) {
          // The verified result is recorded like fn's, so later replays return it too.
          const result = typeof answer === 'object' ? answer.result : undefined;
          const sealed = result === undefined ? null : sealSecrets(result, secretKey);
          await decided.write(this.#queue, { kind: 'done', scope, key, result: sealed, events: [] });
          return result as T | undefined;
        }
      } else {
        decided.add('effect:in-doubt', { shard, key, attempts: entry.attempts, resolution: 'run-again' });
      }
    }
    if (this.#input.leaseLost?.()) {
      await decided.write(this.#queue, { kind: 'events', scope, events: [] });
      throw new Error(`effect ${key} not started: this worker lost its lease on shard ${shard}`);
    }
    decided.add('effect:start', { shard, key, attempt: (entry?.attempts ?? 0) + 1 });
    // Started over only from the intent this run found in doubt: two runs that found it at once
    // (two shards sharing the key, its writer dead) both ask verify, and only the first to write
    // runs fn; the other's write is not written (nor its events), and it claims the key again.
    const over = entry === undefined ? {} : { over: { attempts: entry.attempts, runId: entry.runId } };
    const moved = await decided.write(this.#queue, { kind: 'intent', scope, key, events: [], runId: this.#input.runId, ...over });
    if (moved !== undefined) return CLAIM_AGAIN;
    return this.#run(scope, key, fn, record, options.target, this.#limit(key, options));
  }

  /** Runs `fn`, its intent durable, and records how it ended (a failure gives its count back to `limit`). */
  async #run<T>(
    scope: EffectScope,
    key: string,
    fn: () => T | Promise<T>,
    record: DeferredWrites | undefined,
    target: string | undefined,
    limit?: EffectLimit,
  ): Promise<T> {
    const { secretKey, shard } = this.#input;
    let result: T;
    try {
      // The token just before the call, so calls, not intents, keep to the rate.
      if (target !== undefined) await this.#input.rateLimiter?.take(target);
      result = await runningEffect.run(key, fn);
    } catch (error) {
      // fn reported failure: treated as "did not happen", so a retry runs it again.
      const failed = new Decisions(this.#input).add('effect:failed', { shard, key, error: storableError(firstLine(error)) });
      await failed.write(this.#queue, { kind: 'failed', scope, key, events: [], ...(limit === undefined ? {} : { limit }) });
      throw error;
    }
    let sealed: JsonValue | null;
    try {
      sealed = sealSecrets(result, secretKey);
    } catch (error) {
      // fn ran, so the effect happened: a result that cannot be stored (a BigInt, a cycle, no
      // secret key) left the intent in doubt, and each retry ran fn again. Recorded done with no
      // result instead; the record fails once saying why.
      await new Decisions(this.#input).add('effect:done', { shard, key }).write(this.#queue, { kind: 'done', scope, key, result: null, events: [] });
      throw new TypeError(
        `${key} ran, but its result could not be stored (${firstLine(error)}): it is recorded done without a result and will not run again; return plain JSON from fn`,
      );
    }
    const done = new Decisions(this.#input)
      .add('effect:done', { shard, key })
      .write(this.#queue, { kind: 'done', scope, key, result: sealed, events: [] }, record !== undefined);
    // The completion may travel with the record's next intent (one commit instead of two): the
    // queue makes nothing written after it durable before it, and the record is not counted
    // (no checkpoint covers it) until it is durable.
    if (record !== undefined) record.defer(done);
    else await done;
    return result;
  }

  /** A step is an effect keyed by the record's position and the step's name. */
  async step<T>(position: unknown, name: string, fn: () => T | Promise<T>, options?: OnceOptions<T>, record?: DeferredWrites): Promise<T> {
    if (typeof name !== 'string' || name === '') throw new TypeError('ctx.step needs a non-empty name');
    return (await this.once(`step:${this.#input.shard}:${JSON.stringify(position)}:${name}`, fn, { ...options, kind: options?.kind ?? name }, record)) as T;
  }

  idempotencyKey(position: unknown, name: string): string {
    const { job, scope, shard } = this.#input;
    const identity: JsonValue = [job, scope.instanceId, scope.generation, shard, JSON.stringify(position) ?? null, name];
    return `ckpt-${sha256(JSON.stringify(identity)).slice(0, 32)}`;
  }
}

/** Events to store with one journal write; listeners hear of them once it is durable. */
class Decisions {
  readonly #input: EffectsInput;
  readonly #events: { type: EventType; data: EventMap[EventType]; at: number }[] = [];

  constructor(input: EffectsInput) {
    this.#input = input;
  }

  add<K extends EventType>(type: K, data: EventMap[K]): this {
    this.#events.push({ type, data, at: Date.now() });
    return this;
  }

  /**
   * Queues `write` with these events (`deferred`: its caller does not wait for it to go on, see
   * JournalQueue); a claim refused by an existing entry records none, so tells
   * none. A write the store fenced (this run's token is stale): a refused start throws
   * FencedError, so `fn` never runs; a late completion is told as the store recorded it.
   */
  async write(queue: JournalQueue, write: JournalWrite, deferred = false): Promise<EffectEntry | JournalLimited | undefined> {
    const { runId, shard } = this.#input;
    write.events = this.#events.map(({ type, data, at }) => ({ type, at, runId, shard, data: data as unknown as JsonObject }));
    const outcome = await queue.write(write, { deferred });
    const key = 'key' in write ? write.key : '';
    if (outcome !== undefined && 'fenced' in outcome) {
      if (outcome.fenced === 'refused') {
        throw new FencedError(
          `effect ${key} not started: shard ${shard} was taken by another worker${outcome.holderRunId === null ? '' : ` (run ${outcome.holderRunId})`}; this worker's fencing token is stale`,
          { shard },
        );
      }
      if (outcome.kept === 'late') for (const { type, data } of this.#events) this.#input.notify(type, data);
      this.#input.notify('effect:late-completion', { shard, key, runId, holderRunId: outcome.holderRunId, kept: outcome.kept });
      return undefined;
    }
    if (outcome === undefined) for (const { type, data } of this.#events) this.#input.notify(type, data);
    return outcome;
  }
}

/** A verify answer that is none of true, false or { result }, as a message shows it. */
function describeAnswer(answer: unknown): string {
  if (answer === undefined) return 'undefined (nothing returned)';
  const text = typeof answer === 'string' ? JSON.stringify(answer) : (JSON.stringify(answer) ?? String(answer));
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
