import { grantOf, planBody, planId, takeFromRow, toStoredPlan, withApproval } from '../plan-rows.ts';
import type { NewPlan, PlanApproval, PlanStore, RateBucketStore, StoredPlan, TokenGrant } from '../store.ts';
import type { SqlDriver } from './sql-driver.ts';

/** Plans on a SQL server: one row each, its effects in one JSON document. */
export class SqlPlans implements PlanStore {
  readonly #db: SqlDriver;

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  async savePlan(plan: NewPlan): Promise<StoredPlan> {
    const id = planId(plan);
    const { prefix: p, dialect } = this.#db;
    await this.#db.run(
      `INSERT INTO ${p}plans (id, instance_id, hash, body, approvals, created_at) VALUES (?, ?, ?, ?, '[]', ${dialect.now})${dialect.onConflict(['id'], [], 'id')}`,
      [id, plan.instanceId, plan.hash, planBody(plan)],
    );
    return (await this.plan(id)) as StoredPlan;
  }

  async plan(id: string): Promise<StoredPlan | undefined> {
    const row = (await this.#db.rows(`SELECT * FROM ${this.#db.prefix}plans WHERE id = ?`, [id]))[0];
    return row === undefined ? undefined : toStoredPlan(row);
  }

  async approvePlan(id: string, approval: PlanApproval): Promise<StoredPlan | undefined> {
    const p = this.#db.prefix;
    // The row lock orders two approvals at once: neither overwrites the other's.
    const found = await this.#db.transaction(async (on) => {
      const row = (await on.query(`SELECT approvals FROM ${p}plans WHERE id = ? FOR UPDATE`, [id])).rows[0];
      if (row === undefined) return false;
      await on.query(`UPDATE ${p}plans SET approvals = ? WHERE id = ?`, [withApproval(row.approvals, approval), id]);
      return true;
    });
    return found ? this.plan(id) : undefined;
  }
}

/**
 * Rate buckets on a SQL server. Where the server has RETURNING (PostgreSQL), a take is one upsert
 * statement. Elsewhere (MySQL) it is one short transaction that makes sure the bucket's row
 * exists, locks it (so the takes of every worker are ordered), reads it with the database's
 * time, and writes back what is left. The first statement is an upsert that changes nothing, not
 * a plain insert that skips a duplicate: on MySQL it takes the row's exclusive lock at once,
 * where a shared lock on the duplicate would deadlock two takers upgrading it.
 */
export class SqlRateBuckets implements RateBucketStore {
  readonly #db: SqlDriver;

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  async takeTokens(name: string, perSecond: number, burst: number, want: number): Promise<TokenGrant> {
    const { prefix: p, dialect } = this.#db;
    if (dialect.returning) {
      // One statement, one round trip: the upsert locks the row, `excluded.updated_at` is the
      // database's time taken once, and every SET expression reads the row as it was.
      const available = `LEAST(CAST(? AS DOUBLE PRECISION), b.tokens + GREATEST(0, excluded.updated_at - b.updated_at) * CAST(? AS DOUBLE PRECISION) / 1000.0)`;
      const rows = await this.#db.rows(
        `INSERT INTO ${p}rate_buckets AS b (name, tokens, granted, updated_at) VALUES (?, ?, ?, ${dialect.now})
         ON CONFLICT (name) DO UPDATE SET
           granted = LEAST(CAST(? AS DOUBLE PRECISION), floor(${available})),
           tokens = ${available} - LEAST(CAST(? AS DOUBLE PRECISION), floor(${available})),
           updated_at = GREATEST(b.updated_at, excluded.updated_at)
         RETURNING granted, tokens`,
        [name, burst - Math.min(want, burst), Math.min(want, burst), want, burst, perSecond, burst, perSecond, want, burst, perSecond],
      );
      return grantOf(Number(rows[0]?.granted ?? 0), Number(rows[0]?.tokens ?? 0), perSecond);
    }
    return this.#db.transaction(async (on) => {
      await on.query(`INSERT INTO ${p}rate_buckets (name, tokens, updated_at) VALUES (?, ?, ${dialect.now})${dialect.onConflict(['name'], [], 'tokens')}`, [
        name,
        burst,
      ]);
      const row = (await on.query(`SELECT tokens, updated_at, ${dialect.now} AS now FROM ${p}rate_buckets WHERE name = ? FOR UPDATE`, [name])).rows[0];
      const next = takeFromRow(row, Number(row?.now ?? Date.now()), perSecond, burst, want);
      await on.query(`UPDATE ${p}rate_buckets SET tokens = ?, updated_at = ? WHERE name = ?`, [next.tokens, next.updatedAt, name]);
      return next.grant;
    });
  }
}
