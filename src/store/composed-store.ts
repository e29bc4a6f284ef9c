import { StoreError } from '../errors.ts';
import type { JsonValue } from '../json.ts';
import type {
  CheckpointStore,
  DeadLetterStore,
  EffectJournal,
  EffectJournalParts,
  EffectScope,
  GuardStore,
  HistoryStore,
  InstanceStore,
  LeaseStore,
  NewEvent,
  PlanStore,
  RateBucketStore,
  Store,
  StoreLifecycle,
} from './store.ts';

/** What a backend provides: one object per concern, each from its `<backend>-<concern>.ts` file. */
export interface StoreParts {
  lifecycle: Omit<StoreLifecycle, 'location'>;
  instances: InstanceStore;
  leases: LeaseStore;
  checkpoints: CheckpointStore;
  journal: EffectJournalParts;
  deadLetters: DeadLetterStore;
  history: HistoryStore;
  guards: GuardStore;
  plans: PlanStore;
  rateBuckets: RateBucketStore;
}

/**
 * Every backend's store class extends this: it turns the concerns into the one flat `Store` the
 * runner and the CLI take, and it is the single guard of the lifecycle for all backends, so no
 * backend repeats it: close runs once, and every call after close is refused with the same
 * StoreError (a connection pool ended, or a SQLite handle closed, would otherwise fail in a
 * different way per driver, or worse, be reopened). The retry wrapper (retrying-store.ts) sits
 * on top of this, in the runner.
 */
export class ComposedStore implements Store {
  readonly location: string;
  /** Undefined once closed. */
  #parts: StoreParts | undefined;

  constructor(location: string, parts: StoreParts) {
    this.location = location;
    this.#parts = parts;
  }

  get closed(): boolean {
    return this.#parts === undefined;
  }

  #live(): StoreParts {
    if (this.#parts === undefined) throw new StoreError(`the store ${this.location} is closed`);
    return this.#parts;
  }

  async migrate(): Promise<void> {
    return this.#live().lifecycle.migrate();
  }
  async close(): Promise<void> {
    const parts = this.#parts;
    if (parts === undefined) return;
    this.#parts = undefined;
    await parts.lifecycle.close();
  }

  async instance(...args: Parameters<InstanceStore['instance']>) {
    return this.#live().instances.instance(...args);
  }
  async resetInstance(...args: Parameters<InstanceStore['resetInstance']>) {
    return this.#live().instances.resetInstance(...args);
  }
  async listInstances(...args: Parameters<InstanceStore['listInstances']>) {
    return this.#live().instances.listInstances(...args);
  }
  async ensureShards(...args: Parameters<InstanceStore['ensureShards']>) {
    return this.#live().instances.ensureShards(...args);
  }
  async listShards(...args: Parameters<InstanceStore['listShards']>) {
    return this.#live().instances.listShards(...args);
  }
  async setInputs(...args: Parameters<InstanceStore['setInputs']>) {
    return this.#live().instances.setInputs(...args);
  }
  async completeIfDone(...args: Parameters<InstanceStore['completeIfDone']>) {
    return this.#live().instances.completeIfDone(...args);
  }

  async reapCrashed(...args: Parameters<LeaseStore['reapCrashed']>) {
    return this.#live().leases.reapCrashed(...args);
  }
  async claim(...args: Parameters<LeaseStore['claim']>) {
    return this.#live().leases.claim(...args);
  }
  async leaseShard(...args: Parameters<LeaseStore['leaseShard']>) {
    return this.#live().leases.leaseShard(...args);
  }
  async markProgress(...args: Parameters<LeaseStore['markProgress']>) {
    return this.#live().leases.markProgress(...args);
  }
  async holders(...args: Parameters<LeaseStore['holders']>) {
    return this.#live().leases.holders(...args);
  }
  async liveRunOrFence(...args: Parameters<LeaseStore['liveRunOrFence']>) {
    return this.#live().leases.liveRunOrFence(...args);
  }
  async heartbeat(...args: Parameters<LeaseStore['heartbeat']>) {
    return this.#live().leases.heartbeat(...args);
  }
  async previousRun(...args: Parameters<LeaseStore['previousRun']>) {
    return this.#live().leases.previousRun(...args);
  }
  async release(...args: Parameters<LeaseStore['release']>) {
    return this.#live().leases.release(...args);
  }
  async waitForChange(...args: Parameters<LeaseStore['waitForChange']>) {
    return this.#live().leases.waitForChange(...args);
  }
  async now() {
    return this.#live().leases.now();
  }

  async latest(...args: Parameters<CheckpointStore['latest']>) {
    return this.#live().checkpoints.latest(...args);
  }
  async begin(...args: Parameters<CheckpointStore['begin']>) {
    return this.#live().checkpoints.begin(...args);
  }
  async commit(...args: Parameters<CheckpointStore['commit']>) {
    return this.#live().checkpoints.commit(...args);
  }
  async rollback(...args: Parameters<CheckpointStore['rollback']>) {
    return this.#live().checkpoints.rollback(...args);
  }

  async effect(...args: Parameters<EffectJournal['effect']>) {
    return this.#live().journal.effect(...args);
  }
  async journal(...args: Parameters<EffectJournal['journal']>) {
    return this.#live().journal.journal(...args);
  }
  async effectIntent(scope: EffectScope, key: string, events: NewEvent[] = []) {
    await this.journal(scope.instanceId, [{ kind: 'intent', scope, key, events }]);
  }
  async effectDone(scope: EffectScope, key: string, result: JsonValue | null, events: NewEvent[] = []) {
    await this.journal(scope.instanceId, [{ kind: 'done', scope, key, result, events }]);
  }
  async effectFailed(scope: EffectScope, key: string, events: NewEvent[] = []) {
    await this.journal(scope.instanceId, [{ kind: 'failed', scope, key, events }]);
  }

  async addDeadLetter(...args: Parameters<DeadLetterStore['addDeadLetter']>) {
    return this.#live().deadLetters.addDeadLetter(...args);
  }
  async countDeadLetters(...args: Parameters<DeadLetterStore['countDeadLetters']>) {
    return this.#live().deadLetters.countDeadLetters(...args);
  }
  async listDeadLetters(...args: Parameters<DeadLetterStore['listDeadLetters']>) {
    return this.#live().deadLetters.listDeadLetters(...args);
  }
  async countInstanceDeadLetters(...args: Parameters<DeadLetterStore['countInstanceDeadLetters']>) {
    return this.#live().deadLetters.countInstanceDeadLetters(...args);
  }
  async resolveDeadLetter(...args: Parameters<DeadLetterStore['resolveDeadLetter']>) {
    return this.#live().deadLetters.resolveDeadLetter(...args);
  }
  async noteDeadLetterRetry(...args: Parameters<DeadLetterStore['noteDeadLetterRetry']>) {
    return this.#live().deadLetters.noteDeadLetterRetry(...args);
  }

  async appendEvents(...args: Parameters<HistoryStore['appendEvents']>) {
    return this.#live().history.appendEvents(...args);
  }
  async listEvents(...args: Parameters<HistoryStore['listEvents']>) {
    return this.#live().history.listEvents(...args);
  }
  async chainHead(...args: Parameters<HistoryStore['chainHead']>) {
    return this.#live().history.chainHead(...args);
  }
  async checkChainKey(...args: Parameters<HistoryStore['checkChainKey']>) {
    return this.#live().history.checkChainKey(...args);
  }
  async failureHistory(...args: Parameters<HistoryStore['failureHistory']>) {
    return this.#live().history.failureHistory(...args);
  }
  async listRuns(...args: Parameters<HistoryStore['listRuns']>) {
    return this.#live().history.listRuns(...args);
  }
  async status(...args: Parameters<HistoryStore['status']>) {
    return this.#live().history.status(...args);
  }

  async hold(...args: Parameters<GuardStore['hold']>) {
    return this.#live().guards.hold(...args);
  }
  async holds(...args: Parameters<GuardStore['holds']>) {
    return this.#live().guards.holds(...args);
  }
  async approve(...args: Parameters<GuardStore['approve']>) {
    return this.#live().guards.approve(...args);
  }
  async effectCounts(...args: Parameters<GuardStore['effectCounts']>) {
    return this.#live().guards.effectCounts(...args);
  }

  async savePlan(...args: Parameters<PlanStore['savePlan']>) {
    return this.#live().plans.savePlan(...args);
  }
  async plan(...args: Parameters<PlanStore['plan']>) {
    return this.#live().plans.plan(...args);
  }
  async approvePlan(...args: Parameters<PlanStore['approvePlan']>) {
    return this.#live().plans.approvePlan(...args);
  }

  async takeTokens(...args: Parameters<RateBucketStore['takeTokens']>) {
    return this.#live().rateBuckets.takeTokens(...args);
  }
}
