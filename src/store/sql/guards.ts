import { applyLimits, counterKey, decideApproval, type LimitCounter, limitedWrites, toHold } from '../guard-rules.ts';
import type { Row } from '../rows.ts';
import type { ApprovalOutcome, EffectCount, GuardStore, HoldInfo, JournalOutcome, JournalWrite, NewApproval, NewEvent, NewHold } from '../store.ts';
import type { SqlBackend, SqlDriver, SqlQueryable } from './sql-driver.ts';

// Holds, approvals and effect limits of the PostgreSQL and MySQL stores, written once over the
// driver (statements in `?` placeholders) and its dialect (upserts, the share lock); each server
// brings only how its journal finds a key and its chain's append inside a transaction.

/** What the guards take of a server beside its driver. */
export type GuardServer = Pick<SqlBackend<unknown>, 'effectKey' | 'appendChainedOn'>;

/** The rows of one statement on `on`. */
async function rowsOn(on: SqlQueryable, sql: string, values: unknown[]): Promise<Row[]> {
  return (await on.query(sql, values)).rows;
}

/**
 * Effect limits of a journal batch, inside its transaction, before its claims are written: the
 * limited kinds' counter rows are locked (created if new) so the limited claims of every worker
 * on the instance are counted one batch at a time, the keys' entries are read, applyLimits
 * decides, and the new counts are stored. Taken after the shard row's fence check and before
 * the chain head (the order every journal batch takes its locks in).
 */
export async function limitBatch(
  on: SqlQueryable,
  db: Pick<SqlDriver, 'prefix' | 'dialect'>,
  effectKey: GuardServer['effectKey'],
  instanceId: number,
  batch: readonly JournalWrite[],
): Promise<{ writes: readonly JournalWrite[]; answer: (applied: readonly JournalOutcome[]) => JournalOutcome[] }> {
  const limited = limitedWrites(batch);
  if (limited.length === 0) return { writes: batch, answer: (applied) => [...applied] };
  const { prefix: p, dialect } = db;
  const counters = new Map<string, LimitCounter>();
  const kinds = [...new Map(limited.map((write) => [counterKey(write.limit), write.limit])).values()].sort((a, b) => (counterKey(a) < counterKey(b) ? -1 : 1));
  for (const limit of kinds) {
    await on.query(
      `INSERT INTO ${p}effect_counts (instance_id, generation, kind, used, raised) VALUES (?, ?, ?, 0, 0)${dialect.onConflict(['instance_id', 'generation', 'kind'], [], 'instance_id')}`,
      [instanceId, limit.generation, limit.kind],
    );
    const row = (
      await rowsOn(on, `SELECT used, raised FROM ${p}effect_counts WHERE instance_id = ? AND generation = ? AND kind = ? FOR UPDATE`, [
        instanceId,
        limit.generation,
        limit.kind,
      ])
    )[0];
    if (row !== undefined) counters.set(counterKey(limit), { used: Number(row.used), raised: Number(row.raised) });
  }
  const entries = new Map<string, string>();
  for (const write of limited) {
    if (write.kind !== 'claim' && write.kind !== 'failed') continue;
    const key = effectKey(write.key);
    const row = (
      await rowsOn(on, `SELECT status FROM ${p}effects WHERE instance_id = ? AND generation = ? AND ${key.column} = ? ${dialect.shareLock}`, [
        instanceId,
        write.scope.generation,
        key.value,
      ])
    )[0];
    if (row !== undefined) entries.set(`${write.scope.generation}:${write.key}`, String(row.status));
  }
  const decided = applyLimits(batch, counters, (write) => {
    const status = entries.get(`${write.scope.generation}:${write.key}`);
    // A claim counts nothing over any entry (done or intent); a failure gives back only an intent.
    return write.kind === 'failed' ? status === 'intent' : status !== undefined;
  });
  for (const limit of kinds) {
    const used = decided.used.get(counterKey(limit));
    if (used === undefined) continue;
    await on.query(`UPDATE ${p}effect_counts SET used = ? WHERE instance_id = ? AND generation = ? AND kind = ?`, [
      used,
      instanceId,
      limit.generation,
      limit.kind,
    ]);
  }
  return { writes: decided.writes, answer: decided.outcomes };
}

/**
 * GuardStore over SQL. An approval's transaction locks the instance row first, so two
 * approvals of one instance are decided one after the other; then the hold, the counter (a
 * limit's raise) and the chain head, the order a journal batch takes counter and head in.
 */
export class SqlGuards implements GuardStore {
  readonly #db: SqlDriver;
  readonly #server: GuardServer;

  constructor(driver: SqlDriver, server: GuardServer) {
    this.#db = driver;
    this.#server = server;
  }

  async hold(instanceId: number, generation: number, hold: NewHold, events: NewEvent[]): Promise<{ hold: HoldInfo; opened: boolean }> {
    const p = this.#db.prefix;
    return this.#db.transaction(async (on) => {
      await on.query(`SELECT id FROM ${p}instances WHERE id = ? FOR UPDATE`, [instanceId]);
      const found = await this.#find(on, instanceId, generation, hold.name);
      if (found !== undefined && found.releasedAt === null) return { hold: found, opened: false };
      const at = Date.now();
      if (found === undefined) {
        await on.query(
          `INSERT INTO ${p}holds (instance_id, generation, name, kind, detail, required, round, held_at, released_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, NULL)`,
          [instanceId, generation, hold.name, hold.kind, JSON.stringify(hold.detail), hold.required, at],
        );
      } else {
        await on.query(
          `UPDATE ${p}holds SET kind = ?, detail = ?, required = ?, round = round + 1, held_at = ?, released_at = NULL WHERE instance_id = ? AND generation = ? AND name = ?`,
          [hold.kind, JSON.stringify(hold.detail), hold.required, at, instanceId, generation, hold.name],
        );
      }
      const opened = (await this.#find(on, instanceId, generation, hold.name)) as HoldInfo;
      await this.#server.appendChainedOn(
        on,
        instanceId,
        generation,
        events.map((event) => ({ ...event, data: { ...event.data, round: opened.round } })),
      );
      return { hold: opened, opened: true };
    });
  }

  async holds(instanceId: number, generation: number): Promise<HoldInfo[]> {
    return this.#list((sql, values) => this.#db.rows(sql, values), instanceId, generation);
  }

  async #list(rows: (sql: string, values: unknown[]) => Promise<Row[]>, instanceId: number, generation: number, name?: string): Promise<HoldInfo[]> {
    const p = this.#db.prefix;
    const named = name === undefined ? '' : ' AND name = ?';
    const values = name === undefined ? [instanceId, generation] : [instanceId, generation, name];
    const holds = await rows(`SELECT * FROM ${p}holds WHERE instance_id = ? AND generation = ?${named} ORDER BY name`, values);
    if (holds.length === 0) return [];
    const approvals = await rows(`SELECT * FROM ${p}approvals WHERE instance_id = ? AND generation = ?${named} ORDER BY id`, values);
    return holds.map((row) => toHold(row, approvals));
  }

  async #find(on: SqlQueryable, instanceId: number, generation: number, name: string): Promise<HoldInfo | undefined> {
    return (await this.#list((sql, values) => rowsOn(on, sql, values), instanceId, generation, name))[0];
  }

  async approve(instanceId: number, generation: number, approval: NewApproval): Promise<ApprovalOutcome> {
    const { prefix: p, dialect } = this.#db;
    return this.#db.transaction(async (on) => {
      await on.query(`SELECT id FROM ${p}instances WHERE id = ? FOR UPDATE`, [instanceId]);
      const all = await this.#list((sql, values) => rowsOn(on, sql, values), instanceId, generation);
      const hold = all.find((held) => held.name === approval.name);
      const at = Date.now();
      const decided = decideApproval(
        hold,
        all.filter((held) => held.releasedAt === null),
        approval,
        at,
      );
      if (decided.refuse !== undefined) return decided.refuse;
      const held = hold as HoldInfo;
      await on.query(
        `INSERT INTO ${p}approvals (instance_id, generation, name, round, by_name, os_user, reason, raise_by, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [instanceId, generation, held.name, held.round, approval.by, approval.osUser, approval.reason, approval.raise, at],
      );
      if (decided.release) {
        await on.query(`UPDATE ${p}holds SET released_at = ? WHERE instance_id = ? AND generation = ? AND name = ?`, [at, instanceId, generation, held.name]);
        const kind = held.detail.kind;
        if (held.kind === 'limit' && typeof kind === 'string' && decided.raise !== null) {
          await on.query(
            `INSERT INTO ${p}effect_counts (instance_id, generation, kind, used, raised) VALUES (?, ?, ?, 0, ?)${dialect.onConflictAdd(['instance_id', 'generation', 'kind'], `${p}effect_counts`, 'raised')}`,
            [instanceId, generation, kind, decided.raise],
          );
        }
      }
      await this.#server.appendChainedOn(on, instanceId, generation, decided.events);
      return { outcome: 'recorded', hold: (await this.#find(on, instanceId, generation, held.name)) as HoldInfo, released: decided.release };
    });
  }

  async effectCounts(instanceId: number, generation: number): Promise<EffectCount[]> {
    const rows = await this.#db.rows(`SELECT kind, used, raised FROM ${this.#db.prefix}effect_counts WHERE instance_id = ? AND generation = ? ORDER BY kind`, [
      instanceId,
      generation,
    ]);
    return rows.map((row) => ({ kind: String(row.kind), used: Number(row.used), raised: Number(row.raised) }));
  }
}
