import { FencedError, StoreError } from '../../src/errors.ts';
import type { JsonObject, JsonValue } from '../../src/json.ts';
import { chainEvents } from '../../src/store/audit-chain.ts';
import { CHECKPOINT_HISTORY, checkpointChecksum } from '../../src/store/checksum.ts';
import { ComposedStore } from '../../src/store/composed-store.ts';
import { applyLimits, counterKey, decideApproval, type LimitCounter } from '../../src/store/guard-rules.ts';
import { idleWait } from '../../src/store/idle-wait.ts';
import { completions, entryKey, fenceBatch, intentMoved, isStale } from '../../src/store/journal-fence.ts';
import { grantOf, planId, takeFromBucket, withApproval } from '../../src/store/plan-rows.ts';
import { toStatus } from '../../src/store/rows.ts';
import type {
  ApprovalOutcome,
  ChainHead,
  Checkpoint,
  CheckpointWrite,
  Completion,
  DeadLetter,
  EffectCount,
  EffectEntry,
  EffectScope,
  FailureHistory,
  HolderInfo,
  HoldInfo,
  InstanceInfo,
  InstanceStatus,
  JournalFence,
  JournalOutcome,
  JournalWrite,
  LatestCheckpoint,
  Lease,
  LiveRun,
  NewApproval,
  NewDeadLetter,
  NewEvent,
  NewHold,
  NewPlan,
  PlanApproval,
  ProgressMark,
  RunInfo,
  RunOutcome,
  RunProgress,
  ShardInfo,
  ShardInputs,
  Store,
  StoredEvent,
  StoredPlan,
  StoreLifecycle,
  TokenGrant,
  Tx,
} from '../../src/store/store.ts';

interface StoredCheckpoint extends Checkpoint {
  checksum: string;
}

/**
 * A store in this process's memory, for unit tests of the runner only: it keeps the contract
 * (the contract suite runs against it) but nothing survives the process, and `ctx.tx` is not
 * available. Never use it for a guarantee. Not published: `memory:` store URLs open an
 * in-memory SQLite store instead. Like every backend, it is made one Store by ComposedStore,
 * which also refuses use after close.
 */
export class MemoryStore extends ComposedStore {
  constructor() {
    const backend = new MemoryBackend();
    super('memory:', {
      lifecycle: { migrate: async () => undefined, close: async () => undefined },
      instances: backend,
      leases: backend,
      checkpoints: backend,
      journal: backend,
      deadLetters: backend,
      history: backend,
      guards: backend,
      plans: backend,
      rateBuckets: backend,
    });
  }
}

/** Every concern at once, in plain arrays and maps. */
class MemoryBackend implements Omit<Store, keyof StoreLifecycle> {
  #instances: InstanceInfo[] = [];
  #shards: ShardInfo[] = [];
  #checkpoints = new Map<number, StoredCheckpoint[]>();
  #runs: RunInfo[] = [];
  #events: StoredEvent[] = [];
  #chainHeads = new Map<number, ChainHead>();
  #openTx = new Set<Tx>();
  #effects = new Map<string, EffectEntry>();
  #deadLetters: DeadLetter[] = [];
  /** Dead letters written through an open tx: they land with its commit, or never. */
  #pendingLetters = new Map<Tx, DeadLetter[]>();
  #nextLetterId = 1;
  #plans = new Map<string, StoredPlan>();
  #buckets = new Map<string, { tokens: number; updatedAt: number }>();

  async savePlan(plan: NewPlan): Promise<StoredPlan> {
    const id = planId(plan);
    if (!this.#plans.has(id)) this.#plans.set(id, structuredClone({ ...plan, id, approvals: [], createdAt: Date.now() }));
    return structuredClone(this.#plans.get(id) as StoredPlan);
  }

  async plan(id: string): Promise<StoredPlan | undefined> {
    const found = this.#plans.get(id);
    return found === undefined ? undefined : structuredClone(found);
  }

  async approvePlan(id: string, approval: PlanApproval): Promise<StoredPlan | undefined> {
    const found = this.#plans.get(id);
    if (found === undefined) return undefined;
    found.approvals = JSON.parse(withApproval(JSON.stringify(found.approvals), approval)) as PlanApproval[];
    return structuredClone(found);
  }

  async takeTokens(name: string, perSecond: number, burst: number, want: number): Promise<TokenGrant> {
    const next = takeFromBucket(this.#buckets.get(name), Date.now(), perSecond, burst, want);
    this.#buckets.set(name, { tokens: next.tokens, updatedAt: next.updatedAt });
    return grantOf(next.granted, next.tokens, perSecond);
  }

  async instance(job: string, paramsHash: string, meta: { params: JsonObject; version: string | null }): Promise<InstanceInfo> {
    let found = this.#instances.find((instance) => instance.job === job && instance.paramsHash === paramsHash);
    if (found === undefined) {
      found = {
        id: this.#instances.length + 1,
        job,
        paramsHash,
        params: meta.params,
        generation: 1,
        status: 'open',
        version: meta.version,
        createdAt: Date.now(),
        completedAt: null,
      };
      this.#instances.push(found);
    }
    return { ...found };
  }

  #instanceRow(id: number): InstanceInfo {
    const row = this.#instances.find((instance) => instance.id === id);
    if (row === undefined) throw new StoreError(`no instance ${id}`);
    return row;
  }

  async resetInstance(instanceId: number, fromGeneration?: number, options?: { carry?: boolean }): Promise<InstanceInfo> {
    const row = this.#instanceRow(instanceId);
    if (fromGeneration !== undefined && row.generation !== fromGeneration) return { ...row };
    const olds = this.#currentShards(instanceId).filter((shard) => shard.status === 'completed');
    row.generation++;
    row.status = 'open';
    row.completedAt = null;
    for (const old of options?.carry ? olds : []) {
      const { checkpoint } = await this.latest({ shardId: old.id } as Lease);
      if (checkpoint === undefined) continue;
      const id = this.#shards.length + 1;
      this.#shards.push({
        ...old,
        id,
        generation: row.generation,
        status: 'pending',
        leaseOwner: null,
        leaseExpiresAt: 0,
        checkpointSeq: 1,
        processed: 0,
        updatedAt: Date.now(),
      });
      const seed = { seq: 1, position: checkpoint.position, state: checkpoint.state, processed: 0, createdAt: Date.now() };
      this.#checkpoints.set(id, [{ ...seed, checksum: checkpointChecksum(id, 1, seed.position, seed.state, 0) }]);
    }
    return { ...row };
  }

  async listInstances(job?: string): Promise<InstanceInfo[]> {
    return this.#instances
      .filter((instance) => job === undefined || instance.job === job)
      .map((instance) => ({ ...instance }))
      .reverse();
  }

  #currentShards(instanceId: number): ShardInfo[] {
    const generation = this.#instanceRow(instanceId).generation;
    return this.#shards.filter((shard) => shard.instanceId === instanceId && shard.generation === generation);
  }

  async ensureShards(instance: InstanceInfo, names: string[], meta: { version: string | null }): Promise<ShardInfo[]> {
    const known = new Set(this.#currentShards(instance.id).map((shard) => shard.name));
    for (const name of names) {
      if (known.has(name)) continue;
      this.#shards.push({
        id: this.#shards.length + 1,
        instanceId: instance.id,
        generation: instance.generation,
        name,
        status: 'pending',
        leaseOwner: null,
        leaseToken: 0,
        leaseExpiresAt: 0,
        checkpointSeq: 0,
        processed: 0,
        fingerprint: null,
        version: meta.version,
        paramsHash: null,
        code: null,
        updatedAt: Date.now(),
      });
    }
    return this.listShards(instance.id);
  }

  async listShards(instanceId: number): Promise<ShardInfo[]> {
    return this.#currentShards(instanceId).map((shard) => ({ ...shard }));
  }

  #shard(id: number): ShardInfo {
    const shard = this.#shards.find((row) => row.id === id);
    if (shard === undefined) throw new StoreError(`no shard ${id}`);
    return shard;
  }
  #run(id: number): RunInfo {
    const run = this.#runs.find((row) => row.id === id);
    if (run === undefined) throw new StoreError(`no run ${id}`);
    return run;
  }

  async setInputs(lease: Lease, inputs: ShardInputs): Promise<void> {
    const shard = this.#shard(lease.shardId);
    if (shard.leaseToken !== lease.token) return;
    shard.fingerprint = inputs.fingerprint;
    shard.version = inputs.version;
    shard.paramsHash = inputs.paramsHash;
    shard.code = inputs.code ?? null;
  }

  async reapCrashed(instanceId: number, isDead: (worker: string, node: string | null) => boolean): Promise<RunInfo[]> {
    const now = Date.now();
    const reaped: RunInfo[] = [];
    for (const run of this.#runs) {
      if (run.instanceId !== instanceId || run.outcome !== 'running') continue;
      const shard = this.#shards.find((row) => row.leaseOwner !== null && row.id === this.#runShard.get(run.id));
      const held = shard !== undefined && shard.leaseExpiresAt >= now && shard.leaseToken === this.#runToken.get(run.id);
      if (held && !isDead(run.worker, run.node)) continue;
      run.outcome = run.markStep === 0 ? 'interrupted' : 'crashed';
      run.endedAt = run.heartbeatAt;
      if (shard !== undefined && shard.leaseToken === this.#runToken.get(run.id)) {
        shard.leaseOwner = null;
        shard.leaseExpiresAt = 0;
        if (shard.status !== 'completed') shard.status = 'pending';
      }
      reaped.push({ ...run });
    }
    return reaped;
  }

  #runShard = new Map<number, number>();
  #runToken = new Map<number, number>();

  async claim(instance: InstanceInfo, worker: string, leaseMs: number, node?: string): Promise<Lease | null> {
    const now = Date.now();
    const shard = this.#currentShards(instance.id).find((row) => row.status !== 'completed' && (row.leaseOwner === null || row.leaseExpiresAt < now));
    if (shard === undefined) return null;
    for (const run of this.#runs) {
      if (this.#runShard.get(run.id) === shard.id && run.outcome === 'running') {
        run.outcome = run.markStep === 0 ? 'interrupted' : 'crashed';
        run.endedAt = run.heartbeatAt;
      }
    }
    const lease = this.#takeLease(instance, shard, worker, leaseMs, now);
    shard.status = 'running';
    const run: RunInfo = {
      id: this.#runs.length + 1,
      instanceId: instance.id,
      generation: instance.generation,
      shard: shard.name,
      worker,
      node: node ?? null,
      startedAt: now,
      endedAt: null,
      heartbeatAt: now,
      outcome: 'running',
      resumedFrom: null,
      startProcessed: shard.processed,
      processed: 0,
      markProcessed: shard.processed,
      markCeiling: null,
      markStep: null,
      rework: null,
      checkpoints: 0,
      checkpointMs: 0,
      stats: {},
      error: null,
    };
    this.#runs.push(run);
    this.#runShard.set(run.id, shard.id);
    this.#runToken.set(run.id, shard.leaseToken);
    return { ...lease, runId: run.id };
  }

  /** A new token for `shard`, held by `worker` for `leaseMs` from `now`: the lease, with no run yet (`runId` 0). */
  #takeLease(instance: Pick<InstanceInfo, 'id' | 'generation'>, shard: ShardInfo, worker: string, leaseMs: number, now: number): Lease {
    shard.leaseToken++;
    shard.leaseOwner = worker;
    shard.leaseExpiresAt = now + leaseMs;
    return {
      instanceId: instance.id,
      generation: instance.generation,
      shardId: shard.id,
      shard: shard.name,
      worker,
      token: shard.leaseToken,
      runId: 0,
      leaseMs,
    };
  }

  async now(): Promise<number> {
    return Date.now();
  }

  waitForChange(_instanceId: number, ms: number, signal?: AbortSignal): Promise<void> {
    return idleWait(ms, signal);
  }

  async holders(instanceId: number): Promise<HolderInfo[]> {
    const now = Date.now();
    return this.#currentShards(instanceId)
      .filter((shard) => shard.status !== 'completed' && shard.leaseOwner !== null && shard.leaseExpiresAt >= now)
      .map((shard) => ({
        shard: shard.name,
        worker: shard.leaseOwner as string,
        node: this.#runs.findLast((run) => this.#runShard.get(run.id) === shard.id && this.#runToken.get(run.id) === shard.leaseToken)?.node ?? null,
        expiresAt: shard.leaseExpiresAt,
      }));
  }

  async leaseShard(
    instance: Pick<InstanceInfo, 'id' | 'generation'>,
    target: { id: number; name: string },
    worker: string,
    leaseMs: number,
  ): Promise<Lease | null> {
    const now = Date.now();
    const shard = this.#shards.find((row) => row.id === target.id && row.instanceId === instance.id && row.generation === instance.generation);
    if (shard === undefined || (shard.leaseOwner !== null && shard.leaseExpiresAt >= now)) return null;
    return this.#takeLease(instance, shard, worker, leaseMs, now);
  }

  async liveRunOrFence(runId: number): Promise<LiveRun | undefined> {
    const shardId = this.#runShard.get(runId);
    const shard = this.#shards.find((candidate) => candidate.id === shardId);
    const run = this.#runs.find((candidate) => candidate.id === runId);
    if (shard === undefined || run === undefined || shard.leaseOwner === null) return undefined;
    if (this.#runToken.get(runId) !== shard.leaseToken) return undefined;
    if (shard.leaseExpiresAt >= Date.now()) return { runId, shard: shard.name, worker: shard.leaseOwner, node: run.node };
    shard.leaseToken++;
    shard.leaseOwner = null;
    shard.leaseExpiresAt = 0;
    if (shard.status !== 'completed') shard.status = 'pending';
    return undefined;
  }

  #progress(runId: number, progress: RunProgress, outcome?: RunOutcome): void {
    // A lease outside any run (leaseShard) has no run to write.
    if (runId === 0) return;
    const run = this.#run(runId);
    const now = Date.now();
    run.heartbeatAt = now;
    for (const key of [
      'processed',
      'markProcessed',
      'markCeiling',
      'markStep',
      'rework',
      'checkpoints',
      'checkpointMs',
      'error',
      'resumedFrom',
      'stats',
    ] as const) {
      if (progress[key] !== undefined) Object.assign(run, { [key]: progress[key] });
    }
    if (outcome !== undefined) {
      run.outcome = outcome;
      run.endedAt = now;
    }
  }

  async heartbeat(lease: Lease, progress: RunProgress): Promise<boolean> {
    const shard = this.#shard(lease.shardId);
    this.#progress(lease.runId, progress);
    if (shard.leaseToken !== lease.token) return false;
    shard.leaseExpiresAt = Date.now() + lease.leaseMs;
    return true;
  }

  async markProgress(lease: Lease, mark: ProgressMark): Promise<void> {
    const run = this.#run(lease.runId);
    if (run.outcome !== 'running') return;
    run.markCeiling = mark.ceiling;
    run.markStep = mark.step;
  }

  async latest(lease: Lease): Promise<LatestCheckpoint> {
    const history = [...(this.#checkpoints.get(lease.shardId) ?? [])].reverse();
    const corrupt: number[] = [];
    for (const saved of history) {
      if (checkpointChecksum(lease.shardId, saved.seq, saved.position, saved.state, saved.processed) === saved.checksum) {
        const { checksum: _, ...checkpoint } = saved;
        // No SQL here, so no chunk ever wrote through ctx.tx.
        return { checkpoint: structuredClone(checkpoint), corrupt, corruptWroteTx: [] };
      }
      corrupt.push(saved.seq);
    }
    return { checkpoint: undefined, corrupt, corruptWroteTx: [] };
  }

  async previousRun(lease: Lease): Promise<RunInfo | undefined> {
    const runs = this.#runs.filter((run) => this.#runShard.get(run.id) === lease.shardId && run.id < lease.runId);
    const last = runs.at(-1);
    return last === undefined ? undefined : { ...last };
  }

  async begin(lease: Lease): Promise<Tx> {
    const tx: Tx = {
      lease,
      sql: undefined,
      savepoint: async () => undefined,
      releaseSavepoint: async () => undefined,
      rollbackToSavepoint: async () => undefined,
    };
    this.#openTx.add(tx);
    return tx;
  }

  async commit(tx: Tx, checkpoint: CheckpointWrite, run: RunProgress & { complete?: boolean }): Promise<Checkpoint> {
    if (!this.#openTx.delete(tx)) throw new StoreError('this transaction is not open on this store');
    const { lease } = tx;
    const shard = this.#shard(lease.shardId);
    if (shard.leaseToken !== lease.token) {
      throw new FencedError(`shard ${lease.shard} was claimed by another worker (fencing token ${lease.token} is stale)`, { shard: lease.shard });
    }
    const now = Date.now();
    const seq = shard.checkpointSeq + 1;
    const saved: StoredCheckpoint = {
      seq,
      position: structuredClone(checkpoint.position),
      state: structuredClone(checkpoint.state),
      processed: checkpoint.processed,
      createdAt: now,
      checksum: checkpointChecksum(lease.shardId, seq, checkpoint.position, checkpoint.state, checkpoint.processed),
    };
    const history = this.#checkpoints.get(lease.shardId) ?? [];
    history.push(saved);
    this.#checkpoints.set(lease.shardId, history.slice(-CHECKPOINT_HISTORY));
    shard.checkpointSeq = seq;
    shard.processed = checkpoint.processed;
    shard.updatedAt = now;
    if (run.complete) {
      shard.status = 'completed';
      shard.leaseOwner = null;
      shard.leaseExpiresAt = 0;
    } else {
      shard.leaseExpiresAt = now + lease.leaseMs;
    }
    this.#progress(lease.runId, run, run.complete ? 'completed' : undefined);
    this.#landLetters(tx);
    return { seq, position: saved.position, state: saved.state, processed: saved.processed, createdAt: now };
  }

  async rollback(tx: Tx): Promise<void> {
    this.#openTx.delete(tx);
    this.#pendingLetters.delete(tx);
  }

  #landLetters(tx: Tx): void {
    this.#deadLetters.push(...(this.#pendingLetters.get(tx) ?? []));
    this.#pendingLetters.delete(tx);
  }

  #effectKey(scope: EffectScope, key: string): string {
    return JSON.stringify([scope.instanceId, scope.generation, key]);
  }
  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    const entry = this.#effects.get(this.#effectKey(scope, key));
    return entry === undefined ? undefined : structuredClone(entry);
  }
  async journal(instanceId: number, batch: readonly JournalWrite[], fence?: JournalFence): Promise<JournalOutcome[]> {
    let writes = batch;
    let answer = (applied: readonly JournalOutcome[]): JournalOutcome[] => [...applied];
    const row = fence === undefined ? undefined : this.#shards.find((shard) => shard.id === fence.shardId);
    const holderRun =
      row === undefined ? undefined : this.#runs.find((run) => this.#runShard.get(run.id) === row.id && this.#runToken.get(run.id) === row.leaseToken);
    const holder = row === undefined ? undefined : { token: row.leaseToken, runId: holderRun?.id ?? null };
    if (isStale(fence, holder)) {
      const entries = new Map<string, EffectEntry>();
      for (const write of completions(batch)) {
        const entry = await this.effect(write.scope, write.key);
        if (entry !== undefined) entries.set(entryKey(write.scope.generation, write.key), entry);
      }
      const fenced = fenceBatch(batch, fence, holder, entries);
      writes = fenced.writes;
      answer = fenced.outcomes;
    }
    const prefix = `${instanceId}/`;
    const counters = new Map([...this.#counters].filter(([key]) => key.startsWith(prefix)).map(([key, counter]) => [key.slice(prefix.length), counter]));
    const limited = applyLimits(writes, counters, (write) => {
      const entry = this.#effects.get(this.#effectKey(write.scope, write.key));
      return write.kind === 'failed' ? entry?.status === 'intent' : entry !== undefined;
    });
    writes = limited.writes;
    const fencedAnswer = answer;
    answer = (applied) => fencedAnswer(limited.outcomes(applied));
    for (const [key, used] of limited.used) this.#counters.set(prefix + key, { used, raised: counters.get(key)?.raised ?? 0 });
    const outcomes: JournalOutcome[] = [];
    for (const write of writes) {
      if (write.scope.instanceId !== instanceId) throw new StoreError('a journal batch is of one instance');
      if (write.kind === 'claim') {
        const entry = await this.effect(write.scope, write.key);
        outcomes.push(entry);
        if (entry === undefined) await this.effectIntent(write.scope, write.key, write.events, write.runId ?? null);
        continue;
      }
      if (write.kind === 'intent' && write.over !== undefined) {
        const entry = await this.effect(write.scope, write.key);
        if (intentMoved(write, entry)) {
          outcomes.push(entry);
          continue;
        }
      }
      outcomes.push(undefined);
      if (write.kind === 'intent') await this.effectIntent(write.scope, write.key, write.events, write.runId ?? null);
      else if (write.kind === 'done') await this.effectDone(write.scope, write.key, write.result, write.events);
      else if (write.kind === 'failed') await this.effectFailed(write.scope, write.key, write.events);
      else await this.appendEvents(instanceId, write.scope.generation, write.events);
    }
    return answer(outcomes);
  }
  /** Effect counts, keyed `<instance>/<counterKey>`. */
  #counters = new Map<string, LimitCounter>();
  #holds = new Map<string, HoldInfo>();

  #counterOf(instanceId: number, generation: number, kind: string): string {
    return `${instanceId}/${counterKey({ generation, kind })}`;
  }

  async hold(instanceId: number, generation: number, hold: NewHold, events: NewEvent[]): Promise<{ hold: HoldInfo; opened: boolean }> {
    const key = JSON.stringify([instanceId, generation, hold.name]);
    const found = this.#holds.get(key);
    if (found !== undefined && found.releasedAt === null) return { hold: structuredClone(found), opened: false };
    const opened: HoldInfo = {
      instanceId,
      generation,
      ...structuredClone(hold),
      round: (found?.round ?? 0) + 1,
      heldAt: Date.now(),
      releasedAt: null,
      approvals: [],
    };
    this.#holds.set(key, opened);
    await this.appendEvents(
      instanceId,
      generation,
      events.map((event) => ({ ...event, data: { ...event.data, round: opened.round } })),
    );
    return { hold: structuredClone(opened), opened: true };
  }
  async holds(instanceId: number, generation: number): Promise<HoldInfo[]> {
    return [...this.#holds.values()]
      .filter((hold) => hold.instanceId === instanceId && hold.generation === generation)
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((hold) => structuredClone(hold));
  }
  async approve(instanceId: number, generation: number, approval: NewApproval): Promise<ApprovalOutcome> {
    const all = await this.holds(instanceId, generation);
    const hold = this.#holds.get(JSON.stringify([instanceId, generation, approval.name]));
    const at = Date.now();
    const decided = decideApproval(
      hold === undefined ? undefined : structuredClone(hold),
      all.filter((held) => held.releasedAt === null),
      approval,
      at,
    );
    if (decided.refuse !== undefined) return decided.refuse;
    const held = hold as HoldInfo;
    held.approvals.push({ by: approval.by, osUser: approval.osUser, reason: approval.reason, raise: approval.raise, at });
    if (decided.release) {
      held.releasedAt = at;
      const kind = held.detail.kind;
      if (held.kind === 'limit' && typeof kind === 'string' && decided.raise !== null) {
        const key = this.#counterOf(instanceId, generation, kind);
        const counter = this.#counters.get(key) ?? { used: 0, raised: 0 };
        this.#counters.set(key, { used: counter.used, raised: counter.raised + decided.raise });
      }
    }
    await this.appendEvents(instanceId, generation, decided.events);
    return { outcome: 'recorded', hold: structuredClone(held), released: decided.release };
  }
  async effectCounts(instanceId: number, generation: number): Promise<EffectCount[]> {
    const prefix = `${instanceId}/${generation}:`;
    return [...this.#counters.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, counter]) => ({ kind: key.slice(prefix.length), ...counter }))
      .sort((a, b) => (a.kind < b.kind ? -1 : 1));
  }

  async effectIntent(scope: EffectScope, key: string, events: NewEvent[] = [], runId: number | null = null): Promise<void> {
    await this.appendEvents(scope.instanceId, scope.generation, events);
    const previous = this.#effects.get(this.#effectKey(scope, key));
    this.#effects.set(this.#effectKey(scope, key), {
      key,
      status: 'intent',
      result: null,
      attempts: (previous?.attempts ?? 0) + 1,
      updatedAt: Date.now(),
      runId,
    });
  }
  async effectDone(scope: EffectScope, key: string, result: JsonValue | null, events: NewEvent[] = []): Promise<void> {
    await this.appendEvents(scope.instanceId, scope.generation, events);
    const previous = this.#effects.get(this.#effectKey(scope, key));
    this.#effects.set(this.#effectKey(scope, key), {
      key,
      status: 'done',
      result: structuredClone(result),
      attempts: previous?.attempts ?? 1,
      updatedAt: Date.now(),
      runId: previous?.runId ?? null,
    });
  }
  async effectFailed(scope: EffectScope, key: string, events: NewEvent[] = []): Promise<void> {
    await this.appendEvents(scope.instanceId, scope.generation, events);
    if (this.#effects.get(this.#effectKey(scope, key))?.status === 'intent') this.#effects.delete(this.#effectKey(scope, key));
  }

  async addDeadLetter(tx: Tx, letter: NewDeadLetter): Promise<void> {
    if (!this.#openTx.has(tx)) throw new StoreError('this transaction is not open on this store');
    const { lease } = tx;
    const pending = this.#pendingLetters.get(tx) ?? [];
    pending.push({
      id: this.#nextLetterId++,
      instanceId: lease.instanceId,
      generation: lease.generation,
      shard: lease.shard,
      position: structuredClone(letter.position),
      record: structuredClone(letter.record),
      error: letter.error,
      attempts: letter.attempts,
      runId: lease.runId > 0 ? lease.runId : null,
      createdAt: Date.now(),
    });
    this.#pendingLetters.set(tx, pending);
  }
  async countDeadLetters(lease: Lease): Promise<number> {
    return this.#deadLetters.filter(
      (letter) => letter.instanceId === lease.instanceId && letter.generation === lease.generation && letter.shard === lease.shard,
    ).length;
  }
  async listDeadLetters(instanceId: number, newest?: number): Promise<DeadLetter[]> {
    const generation = this.#instanceRow(instanceId).generation;
    const letters = this.#deadLetters.filter((letter) => letter.instanceId === instanceId && letter.generation === generation);
    return (newest === undefined ? letters : letters.slice(Math.max(0, letters.length - Math.trunc(newest)))).map((letter) => structuredClone(letter));
  }
  async countInstanceDeadLetters(instanceId: number): Promise<number> {
    return (await this.listDeadLetters(instanceId)).length;
  }
  async resolveDeadLetter(tx: Tx, id: number): Promise<boolean> {
    if (!this.#openTx.delete(tx)) throw new StoreError('this transaction is not open on this store');
    if (!this.#deadLetters.some((letter) => letter.id === id)) {
      this.#pendingLetters.delete(tx);
      return false;
    }
    this.#deadLetters = this.#deadLetters.filter((letter) => letter.id !== id);
    this.#landLetters(tx);
    return true;
  }
  async noteDeadLetterRetry(id: number, error: string): Promise<void> {
    const letter = this.#deadLetters.find((row) => row.id === id);
    if (letter === undefined) return;
    letter.error = error;
    letter.attempts++;
  }

  async release(lease: Lease, outcome: Exclude<RunOutcome, 'running'>, run: RunProgress): Promise<void> {
    const shard = this.#shard(lease.shardId);
    if (shard.leaseToken === lease.token) {
      shard.leaseOwner = null;
      shard.leaseExpiresAt = 0;
      if (shard.status !== 'completed') shard.status = 'pending';
    }
    this.#progress(lease.runId, run, outcome);
  }

  async completeIfDone(instanceId: number, generation: number): Promise<Completion> {
    const instance = this.#instanceRow(instanceId);
    if (instance.generation !== generation) return false;
    if (instance.status === 'completed') return 'before';
    if (this.#currentShards(instanceId).some((shard) => shard.status !== 'completed')) return false;
    instance.status = 'completed';
    instance.completedAt = Date.now();
    return 'now';
  }

  /** Its chain is never keyed. */
  async checkChainKey(): Promise<void> {}

  async chainHead(instanceId: number): Promise<ChainHead | undefined> {
    const head = this.#chainHeads.get(instanceId);
    return head === undefined ? undefined : { ...head };
  }

  async appendEvents(instanceId: number, generation: number, events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    const chained = chainEvents(instanceId, generation, this.#chainHeads.get(instanceId), events, undefined);
    this.#chainHeads.set(instanceId, chained.head);
    for (const row of chained.rows) {
      this.#events.push({
        id: this.#events.length + 1,
        instanceId,
        generation,
        runId: row.runId,
        shard: row.shard,
        type: row.type,
        at: row.at,
        data: JSON.parse(row.data) as JsonObject,
        chain: row.link,
      });
    }
  }

  async listEvents(instanceId: number, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const events = this.#events.filter((event) => event.instanceId === instanceId && event.id > (options.afterId ?? 0));
    return options.limit === undefined ? events : events.slice(0, options.limit);
  }

  async failureHistory(instanceId: number): Promise<FailureHistory> {
    const runs = this.#runs.filter((run) => run.instanceId === instanceId);
    return {
      runningMs: runs.reduce((sum, run) => sum + Math.max(0, (run.endedAt ?? run.heartbeatAt) - run.startedAt), 0),
      crashed: runs.filter((run) => run.outcome === 'crashed').length,
    };
  }

  async listRuns(instanceId: number, options: { limit?: number } = {}): Promise<RunInfo[]> {
    const runs = this.#runs
      .filter((run) => run.instanceId === instanceId)
      .map((run) => ({ ...run }))
      .reverse();
    return options.limit === undefined ? runs : runs.slice(0, options.limit);
  }

  async status(instanceId: number): Promise<InstanceStatus> {
    const instance = { ...this.#instanceRow(instanceId) };
    const shards = this.#currentShards(instanceId);
    const times = shards.flatMap((shard) => (this.#checkpoints.get(shard.id) ?? []).map((saved) => saved.createdAt));
    return toStatus(instance, shards, times.length === 0 ? null : Math.max(...times), await this.holders(instanceId));
  }
}
