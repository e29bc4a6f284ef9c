import { grantOf, planBody, planId, toStoredPlan, withApproval } from '../plan-rows.ts';
import type { NewPlan, PlanApproval, PlanStore, RateBucketStore, StoredPlan, TokenGrant } from '../store.ts';
import { NOW, type PostgresDriver } from './postgres-driver.ts';

/** Plans on PostgreSQL: one row each, its effects in one JSON document. */
export class PostgresPlans implements PlanStore {
  readonly #db: PostgresDriver;

  constructor(driver: PostgresDriver) {
    this.#db = driver;
  }

  async savePlan(plan: NewPlan): Promise<StoredPlan> {
    const id = planId(plan);
    await this.#db.query(
      `INSERT INTO ${this.#db.s}plans (id, instance_id, hash, body, approvals, created_at) VALUES ($1, $2, $3, $4, '[]', ${NOW}) ON CONFLICT (id) DO NOTHING`,
      [id, plan.instanceId, plan.hash, planBody(plan)],
    );
    return (await this.plan(id)) as StoredPlan;
  }

  async plan(id: string): Promise<StoredPlan | undefined> {
    const row = (await this.#db.query(`SELECT * FROM ${this.#db.s}plans WHERE id = $1`, [id]))[0];
    return row === undefined ? undefined : toStoredPlan(row);
  }

  async approvePlan(id: string, approval: PlanApproval): Promise<StoredPlan | undefined> {
    // The row lock orders two approvals at once: neither overwrites the other's.
    const found = await this.#db.transaction(async (client) => {
      const row = (await client.query(`SELECT approvals FROM ${this.#db.s}plans WHERE id = $1 FOR UPDATE`, [id])).rows[0];
      if (row === undefined) return false;
      await client.query(`UPDATE ${this.#db.s}plans SET approvals = $1 WHERE id = $2`, [withApproval(row.approvals, approval), id]);
      return true;
    });
    return found ? this.plan(id) : undefined;
  }
}

/**
 * Rate buckets on PostgreSQL: a take is one autocommit statement. The upsert locks the bucket's
 * row, so takes by every worker are ordered; `EXCLUDED.updated_at` is the database's time, taken
 * once, and every SET expression reads the row as it was, so the refill and the take agree.
 */
export class PostgresRateBuckets implements RateBucketStore {
  readonly #db: PostgresDriver;

  constructor(driver: PostgresDriver) {
    this.#db = driver;
  }

  async takeTokens(name: string, perSecond: number, burst: number, want: number): Promise<TokenGrant> {
    const available = `LEAST($3::float8, b.tokens + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * $2::float8 / 1000.0)`;
    const rows = await this.#db.query(
      `INSERT INTO ${this.#db.s}rate_buckets AS b (name, tokens, granted, updated_at)
       VALUES ($1, $3::float8 - LEAST($4::int, floor($3::float8)::int), LEAST($4::int, floor($3::float8)::int), ${NOW})
       ON CONFLICT (name) DO UPDATE SET
         granted = LEAST($4::int, floor(${available})::int),
         tokens = ${available} - LEAST($4::int, floor(${available})::int),
         updated_at = GREATEST(b.updated_at, EXCLUDED.updated_at)
       RETURNING granted, tokens`,
      [name, perSecond, burst, want],
    );
    const row = rows[0] ?? { granted: 0, tokens: 0 };
    return grantOf(Number(row.granted), Number(row.tokens), perSecond);
  }
}
