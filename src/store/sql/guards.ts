import { applyLimits, counterKey, decideApproval, type LimitCounter, limitedWrites, toHold } from '../guard-rules.ts';
import type { Row } from '../rows.ts';
import type { ApprovalOutcome, EffectCount, GuardStore, HoldInfo, JournalOutcome, JournalWrite, NewApproval, NewEvent, NewHold } from '../store.ts';

// Holds, approvals and effect limits of the PostgreSQL and MySQL stores, written once: every
// statement is spelled with `?` placeholders and `{t}` before each table name, and the dialect
// says what differs (its placeholders, its table prefix, its upsert and locking-read words).

/** One transaction of the backend, as the guards use it. */
export interface GuardTx {
  /** Rows of one statement (`?` placeholders, `{t}` table prefix). */
  rows(sql: string, values: unknown[]): Promise<Row[]>;
  /** Links `events` into the instance's chain and inserts them, in this transaction. */
  chain(instanceId: number, generation: number, events: readonly NewEvent[]): Promise<void>;
}

export interface GuardDialect {
  /** Runs `work` in one short transaction of the store's own (never the job's). */
  transaction<T>(work: (tx: GuardTx) => Promise<T>): Promise<T>;
  /** One statement outside any transaction. */
  rows(sql: string, values: unknown[]): Promise<Row[]>;
  /** What ends an insert that must leave an existing row as it is. */
  readonly keepExisting: (conflict: string) => string;
  /** What ends an insert that adds to an existing row's column instead: `column = column + <inserted>`. */
  readonly addTo: (conflict: string, table: string, column: string) => string;
  /** A read that sees, and share-locks, the latest committed row (not a snapshot). */
  readonly shareLock: string;
  /** How an effect is found by key: MySQL by the key's sha256 (an index cannot hold a long key). */
  readonly effectKey: { column: string; value: (key: string) => string };
}

/**
 * Effect limits of a journal batch, inside its transaction, before its claims are written: the
 * limited kinds' counter rows are locked (created if new) so the limited claims of every worker
 * on the instance are counted one batch at a time, the keys' entries are read, applyLimits
 * decides, and the new counts are stored. Taken after the shard row's fence check and before
 * the chain head (the order every journal batch takes its locks in).
 */
export async function limitBatch(
  tx: Pick<GuardTx, 'rows'>,
  dialect: Pick<GuardDialect, 'keepExisting' | 'shareLock' | 'effectKey'>,
  instanceId: number,
  batch: readonly JournalWrite[],
): Promise<{ writes: readonly JournalWrite[]; answer: (applied: readonly JournalOutcome[]) => JournalOutcome[] }> {
  const limited = limitedWrites(batch);
  if (limited.length === 0) return { writes: batch, answer: (applied) => [...applied] };
  const counters = new Map<string, LimitCounter>();
  const kinds = [...new Map(limited.map((write) => [counterKey(write.limit), write.limit])).values()].sort((a, b) => (counterKey(a) < counterKey(b) ? -1 : 1));
  for (const limit of kinds) {
    await tx.rows(
      `INSERT INTO {t}effect_counts (instance_id, generation, kind, used, raised) VALUES (?, ?, ?, 0, 0) ${dialect.keepExisting('instance_id, generation, kind')}`,
      [instanceId, limit.generation, limit.kind],
    );
    const row = (
      await tx.rows('SELECT used, raised FROM {t}effect_counts WHERE instance_id = ? AND generation = ? AND kind = ? FOR UPDATE', [
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
    const row = (
      await tx.rows(`SELECT status FROM {t}effects WHERE instance_id = ? AND generation = ? AND ${dialect.effectKey.column} = ? ${dialect.shareLock}`, [
        instanceId,
        write.scope.generation,
        dialect.effectKey.value(write.key),
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
    await tx.rows('UPDATE {t}effect_counts SET used = ? WHERE instance_id = ? AND generation = ? AND kind = ?', [
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
  readonly #dialect: GuardDialect;

  constructor(dialect: GuardDialect) {
    this.#dialect = dialect;
  }

  async hold(instanceId: number, generation: number, hold: NewHold, events: NewEvent[]): Promise<{ hold: HoldInfo; opened: boolean }> {
    return this.#dialect.transaction(async (tx) => {
      await tx.rows('SELECT id FROM {t}instances WHERE id = ? FOR UPDATE', [instanceId]);
      const found = await this.#find(tx, instanceId, generation, hold.name);
      if (found !== undefined && found.releasedAt === null) return { hold: found, opened: false };
      const at = Date.now();
      if (found === undefined) {
        await tx.rows(
          'INSERT INTO {t}holds (instance_id, generation, name, kind, detail, required, round, held_at, released_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, NULL)',
          [instanceId, generation, hold.name, hold.kind, JSON.stringify(hold.detail), hold.required, at],
        );
      } else {
        await tx.rows(
          'UPDATE {t}holds SET kind = ?, detail = ?, required = ?, round = round + 1, held_at = ?, released_at = NULL WHERE instance_id = ? AND generation = ? AND name = ?',
          [hold.kind, JSON.stringify(hold.detail), hold.required, at, instanceId, generation, hold.name],
        );
      }
      const opened = (await this.#find(tx, instanceId, generation, hold.name)) as HoldInfo;
      await tx.chain(
        instanceId,
        generation,
        events.map((event) => ({ ...event, data: { ...event.data, round: opened.round } })),
      );
      return { hold: opened, opened: true };
    });
  }

  async holds(instanceId: number, generation: number): Promise<HoldInfo[]> {
    return this.#list((sql, values) => this.#dialect.rows(sql, values), instanceId, generation);
  }

  async #list(rows: GuardTx['rows'], instanceId: number, generation: number, name?: string): Promise<HoldInfo[]> {
    const named = name === undefined ? '' : ' AND name = ?';
    const values = name === undefined ? [instanceId, generation] : [instanceId, generation, name];
    const holds = await rows(`SELECT * FROM {t}holds WHERE instance_id = ? AND generation = ?${named} ORDER BY name`, values);
    if (holds.length === 0) return [];
    const approvals = await rows(`SELECT * FROM {t}approvals WHERE instance_id = ? AND generation = ?${named} ORDER BY id`, values);
    return holds.map((row) => toHold(row, approvals));
  }

  async #find(tx: GuardTx, instanceId: number, generation: number, name: string): Promise<HoldInfo | undefined> {
    return (await this.#list((sql, values) => tx.rows(sql, values), instanceId, generation, name))[0];
  }

  async approve(instanceId: number, generation: number, approval: NewApproval): Promise<ApprovalOutcome> {
    const dialect = this.#dialect;
    return dialect.transaction(async (tx) => {
      await tx.rows('SELECT id FROM {t}instances WHERE id = ? FOR UPDATE', [instanceId]);
      const all = await this.#list((sql, values) => tx.rows(sql, values), instanceId, generation);
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
      await tx.rows(
        'INSERT INTO {t}approvals (instance_id, generation, name, round, by_name, os_user, reason, raise_by, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [instanceId, generation, held.name, held.round, approval.by, approval.osUser, approval.reason, approval.raise, at],
      );
      if (decided.release) {
        await tx.rows('UPDATE {t}holds SET released_at = ? WHERE instance_id = ? AND generation = ? AND name = ?', [at, instanceId, generation, held.name]);
        const kind = held.detail.kind;
        if (held.kind === 'limit' && typeof kind === 'string' && decided.raise !== null) {
          await tx.rows(
            `INSERT INTO {t}effect_counts (instance_id, generation, kind, used, raised) VALUES (?, ?, ?, 0, ?) ${dialect.addTo('instance_id, generation, kind', 'effect_counts', 'raised')}`,
            [instanceId, generation, kind, decided.raise],
          );
        }
      }
      await tx.chain(instanceId, generation, decided.events);
      return { outcome: 'recorded', hold: (await this.#find(tx, instanceId, generation, held.name)) as HoldInfo, released: decided.release };
    });
  }

  async effectCounts(instanceId: number, generation: number): Promise<EffectCount[]> {
    const rows = await this.#dialect.rows('SELECT kind, used, raised FROM {t}effect_counts WHERE instance_id = ? AND generation = ? ORDER BY kind', [
      instanceId,
      generation,
    ]);
    return rows.map((row) => ({ kind: String(row.kind), used: Number(row.used), raised: Number(row.raised) }));
  }
}
