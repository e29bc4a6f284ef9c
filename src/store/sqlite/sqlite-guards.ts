import { applyLimits, counterKey, decideApproval, type LimitCounter, limitedWrites, toHold } from '../guard-rules.ts';
import type { ApprovalOutcome, EffectCount, GuardStore, HoldInfo, JournalOutcome, JournalWrite, NewApproval, NewEvent, NewHold } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';
import { appendChained } from './sqlite-history.ts';

/**
 * Effect limits of a journal batch, inside its side-file write transaction (whose lock, one
 * writer per file across processes, is what makes the count exact): reads the counters and the
 * limited keys' entries, lets applyLimits decide, and stores the new counts. Answers the writes
 * still to apply and how to map their outcomes back to the batch.
 */
export function limitBatch(
  db: SqliteDriver,
  instanceId: number,
  batch: readonly JournalWrite[],
): { writes: readonly JournalWrite[]; answer: (applied: readonly JournalOutcome[]) => JournalOutcome[] } {
  const limited = limitedWrites(batch);
  if (limited.length === 0) return { writes: batch, answer: (applied) => [...applied] };
  const counters = new Map<string, LimitCounter>();
  const read = db.sideStatement('SELECT used, raised FROM effect_counts WHERE store_id = ? AND instance_id = ? AND generation = ? AND kind = ?');
  for (const write of limited) {
    const row = read.get(db.storeId, instanceId, write.limit.generation, write.limit.kind);
    if (row !== undefined) counters.set(counterKey(write.limit), { used: Number(row.used), raised: Number(row.raised) });
  }
  const entry = db.sideStatement("SELECT 1 AS found FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ? AND status = 'intent'");
  const any = db.sideStatement('SELECT 1 AS found FROM effects WHERE store_id = ? AND instance_id = ? AND generation = ? AND key = ?');
  const decided = applyLimits(
    batch,
    counters,
    (write) =>
      // A claim counts nothing over any entry (done or intent); a failure gives back only an intent.
      (write.kind === 'failed' ? entry : any).get(db.storeId, instanceId, write.scope.generation, write.key) !== undefined,
  );
  const store = db.sideStatement(
    `INSERT INTO effect_counts (store_id, instance_id, generation, kind, used, raised) VALUES (?, ?, ?, ?, ?, 0)
     ON CONFLICT DO UPDATE SET used = excluded.used`,
  );
  for (const write of limited) {
    const used = decided.used.get(counterKey(write.limit));
    if (used !== undefined) store.run(db.storeId, instanceId, write.limit.generation, write.limit.kind, used);
  }
  return { writes: decided.writes, answer: decided.outcomes };
}

/** Holds, approvals and effect counts of a SQLite store, in the side file with the journal and the chain. */
export class SqliteGuards implements GuardStore {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  async hold(instanceId: number, generation: number, hold: NewHold, events: NewEvent[]): Promise<{ hold: HoldInfo; opened: boolean }> {
    const db = this.#db;
    return db.sideWrite(() => {
      const opened = db
        .sideStatement(
          `INSERT INTO holds (store_id, instance_id, generation, name, kind, detail, required, round, held_at, released_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, NULL)
           ON CONFLICT DO UPDATE SET kind = excluded.kind, detail = excluded.detail, required = excluded.required,
             round = round + 1, held_at = excluded.held_at, released_at = NULL
           WHERE released_at IS NOT NULL`,
        )
        .run(db.storeId, instanceId, generation, hold.name, hold.kind, JSON.stringify(hold.detail), hold.required, Date.now());
      const found = this.#hold(instanceId, generation, hold.name) as HoldInfo;
      const isNew = Number(opened.changes) > 0;
      if (isNew) {
        // The round is known only now: the events say which one they open.
        appendChained(
          db,
          instanceId,
          generation,
          events.map((event) => ({ ...event, data: { ...event.data, round: found.round } })),
        );
      }
      return { hold: found, opened: isNew };
    });
  }

  async holds(instanceId: number, generation: number): Promise<HoldInfo[]> {
    return this.#holds(instanceId, generation);
  }

  #holds(instanceId: number, generation: number, name?: string): HoldInfo[] {
    const db = this.#db;
    const named = name === undefined ? '' : ' AND name = ?';
    const args = name === undefined ? [db.storeId, instanceId, generation] : [db.storeId, instanceId, generation, name];
    const rows = db.side.prepare(`SELECT * FROM holds WHERE store_id = ? AND instance_id = ? AND generation = ?${named} ORDER BY name`).all(...args);
    const approvals = db.side.prepare(`SELECT * FROM approvals WHERE store_id = ? AND instance_id = ? AND generation = ?${named} ORDER BY id`).all(...args);
    return rows.map((row) => toHold(row, approvals));
  }

  #hold(instanceId: number, generation: number, name: string): HoldInfo | undefined {
    return this.#holds(instanceId, generation, name)[0];
  }

  async approve(instanceId: number, generation: number, approval: NewApproval): Promise<ApprovalOutcome> {
    const db = this.#db;
    return db.sideWrite(() => {
      const hold = this.#hold(instanceId, generation, approval.name);
      const open = this.#holds(instanceId, generation).filter((held) => held.releasedAt === null);
      const at = Date.now();
      const decided = decideApproval(hold, open, approval, at);
      if (decided.refuse !== undefined) return decided.refuse;
      const held = hold as HoldInfo;
      db.sideStatement(
        `INSERT INTO approvals (store_id, instance_id, generation, name, round, by_name, os_user, reason, raise_by, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(db.storeId, instanceId, generation, held.name, held.round, approval.by, approval.osUser, approval.reason, approval.raise, at);
      if (decided.release) {
        db.sideStatement('UPDATE holds SET released_at = ? WHERE store_id = ? AND instance_id = ? AND generation = ? AND name = ?').run(
          at,
          db.storeId,
          instanceId,
          generation,
          held.name,
        );
        const kind = held.detail.kind;
        if (held.kind === 'limit' && typeof kind === 'string' && decided.raise !== null) {
          db.sideStatement(
            `INSERT INTO effect_counts (store_id, instance_id, generation, kind, used, raised) VALUES (?, ?, ?, ?, 0, ?)
             ON CONFLICT DO UPDATE SET raised = raised + excluded.raised`,
          ).run(db.storeId, instanceId, generation, kind, decided.raise);
        }
      }
      appendChained(db, instanceId, generation, decided.events);
      return { outcome: 'recorded', hold: this.#hold(instanceId, generation, held.name) as HoldInfo, released: decided.release };
    });
  }

  async effectCounts(instanceId: number, generation: number): Promise<EffectCount[]> {
    const db = this.#db;
    return db.side
      .prepare('SELECT kind, used, raised FROM effect_counts WHERE store_id = ? AND instance_id = ? AND generation = ? ORDER BY kind')
      .all(db.storeId, instanceId, generation)
      .map((row) => ({ kind: String(row.kind), used: Number(row.used), raised: Number(row.raised) }));
  }
}
