import type { SQLInputValue } from 'node:sqlite';
import { batchEvents, completions, entryKey, fenceBatch, intentMoved, isStale, toHolder } from '../journal-fence.ts';
import { toEffect } from '../rows.ts';
import type { EffectEntry, EffectJournalParts, EffectScope, JournalFence, JournalOutcome, JournalWrite } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';
import { limitBatch } from './sqlite-guards.ts';
import { appendChainedGenerations } from './sqlite-history.ts';

/**
 * The effect journal of a SQLite store, in the side file beside it (`<store>.effects`; see
 * SqliteDriver.side for why a second file). A batch of writes is one short transaction with
 * synchronous=FULL (one fsync), durable when the call returns, together with the events that
 * record it in the instance's chain. The journal and the checkpoints need not commit
 * together: the journal is exactly what must survive the chunk being rolled back. Entries are
 * keyed by the main file's random store id, so a side file left beside a deleted and recreated
 * store never answers for it.
 */
export class SqliteJournal implements EffectJournalParts {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  #key(scope: EffectScope, key: string): SQLInputValue[] {
    return [this.#db.storeId, scope.instanceId, scope.generation, key];
  }

  async effect(scope: EffectScope, key: string): Promise<EffectEntry | undefined> {
    return this.#entry(scope, key);
  }

  #entry(scope: EffectScope, key: string): EffectEntry | undefined {
    const row = this.#db
      .sideStatement('SELECT * FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ?')
      .get(...this.#key(scope, key)) as Record<string, unknown> | undefined;
    return row === undefined ? undefined : toEffect(key, row);
  }

  async journal(instanceId: number, batch: readonly JournalWrite[], fence?: JournalFence): Promise<JournalOutcome[]> {
    return this.#db.sideWrite(() => {
      // The shard row is in the main file, read on its connection inside the side file's write
      // transaction. Outside the job's transaction that read sees the last commit; inside it (a
      // BEGIN IMMEDIATE, whose write lock no other process can take to claim the shard) the
      // token cannot have changed since the transaction began: current either way, no lock taken.
      const holder = fence === undefined ? undefined : toHolder(this.#db.get('SELECT lease_token, run_id FROM shards WHERE id = ?', fence.shardId));
      let writes = batch;
      let answer = (applied: readonly JournalOutcome[]): JournalOutcome[] => [...applied];
      if (isStale(fence, holder)) {
        const entries = new Map<string, EffectEntry>();
        for (const write of completions(batch)) {
          const entry = this.#entry(write.scope, write.key);
          if (entry !== undefined) entries.set(entryKey(write.scope.generation, write.key), entry);
        }
        const fenced = fenceBatch(batch, fence, holder, entries);
        writes = fenced.writes;
        answer = fenced.outcomes;
      }
      // Effect limits: counted under the side file's write lock, before any claim is written.
      const limited = limitBatch(this.#db, instanceId, writes);
      writes = limited.writes;
      const fencedAnswer = answer;
      answer = (applied) => fencedAnswer(limited.answer(applied));
      const outcomes: JournalOutcome[] = [];
      const now = Date.now();
      for (const write of writes) {
        let outcome: JournalOutcome;
        if (write.kind === 'claim') {
          const claimed = this.#db
            .sideStatement(
              `INSERT INTO effects (store_id, instance_id, generation, key, status, attempts, updated_at, run_id) VALUES (?, ?, ?, ?, 'intent', 1, ?, ?)
               ON CONFLICT DO NOTHING`,
            )
            .run(...this.#key(write.scope, write.key), now, write.runId ?? null);
          if (Number(claimed.changes) === 0) outcome = this.#entry(write.scope, write.key);
        } else if (write.kind === 'intent') {
          // Over an in-doubt entry: only while the key still has it (read under the file's write lock).
          const current = write.over === undefined ? undefined : this.#entry(write.scope, write.key);
          if (intentMoved(write, current)) {
            outcomes.push(current);
            continue;
          }
          this.#db
            .sideStatement(
              `INSERT INTO effects (store_id, instance_id, generation, key, status, attempts, updated_at, run_id) VALUES (?, ?, ?, ?, 'intent', 1, ?, ?)
               ON CONFLICT DO UPDATE SET status = 'intent', attempts = attempts + 1, updated_at = excluded.updated_at, run_id = excluded.run_id`,
            )
            .run(...this.#key(write.scope, write.key), now, write.runId ?? null);
        } else if (write.kind === 'done') {
          this.#db
            .sideStatement(
              `INSERT INTO effects (store_id, instance_id, generation, key, status, result, attempts, updated_at) VALUES (?, ?, ?, ?, 'done', ?, 1, ?)
               ON CONFLICT DO UPDATE SET status = 'done', result = excluded.result, updated_at = excluded.updated_at`,
            )
            .run(...this.#key(write.scope, write.key), JSON.stringify(write.result), now);
        } else if (write.kind === 'failed') {
          this.#db
            .sideStatement("DELETE FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ? AND status = 'intent'")
            .run(...this.#key(write.scope, write.key));
        }
        outcomes.push(outcome);
      }
      appendChainedGenerations(this.#db, instanceId, batchEvents(writes, outcomes));
      return answer(outcomes);
    });
  }
}
