import { grantOf, planBody, planId, takeFromBucket, toStoredPlan, withApproval } from '../plan-rows.ts';
import type { NewPlan, PlanApproval, PlanStore, RateBucketStore, StoredPlan, TokenGrant } from '../store.ts';
import { type MysqlDriver, NOW } from './mysql-driver.ts';

/** Plans on MySQL/MariaDB: one row each, its effects in one JSON document. */
export class MysqlPlans implements PlanStore {
  readonly #db: MysqlDriver;

  constructor(driver: MysqlDriver) {
    this.#db = driver;
  }

  async savePlan(plan: NewPlan): Promise<StoredPlan> {
    const id = planId(plan);
    await this.#db.query(`INSERT IGNORE INTO ${this.#db.p}plans (id, instance_id, hash, body, approvals, created_at) VALUES (?, ?, ?, ?, '[]', ${NOW})`, [
      id,
      plan.instanceId,
      plan.hash,
      planBody(plan),
    ]);
    return (await this.plan(id)) as StoredPlan;
  }

  async plan(id: string): Promise<StoredPlan | undefined> {
    const row = (await this.#db.rows(`SELECT * FROM ${this.#db.p}plans WHERE id = ?`, [id]))[0];
    return row === undefined ? undefined : toStoredPlan(row);
  }

  async approvePlan(id: string, approval: PlanApproval): Promise<StoredPlan | undefined> {
    // The row lock orders two approvals at once: neither overwrites the other's.
    const found = await this.#db.transaction(async (on) => {
      const row = (await on.query(`SELECT approvals FROM ${this.#db.p}plans WHERE id = ? FOR UPDATE`, [id])).rows[0];
      if (row === undefined) return false;
      await on.query(`UPDATE ${this.#db.p}plans SET approvals = ? WHERE id = ?`, [withApproval(row.approvals, approval), id]);
      return true;
    });
    return found ? this.plan(id) : undefined;
  }
}

/**
 * Rate buckets on MySQL/MariaDB: a take is one short transaction that locks the bucket's row
 * (so takes by every worker are ordered), reads it with the database's time, and writes it back.
 */
export class MysqlRateBuckets implements RateBucketStore {
  readonly #db: MysqlDriver;

  constructor(driver: MysqlDriver) {
    this.#db = driver;
  }

  async takeTokens(name: string, perSecond: number, burst: number, want: number): Promise<TokenGrant> {
    const p = this.#db.p;
    return this.#db.transaction(async (on) => {
      // An upsert that changes nothing, not INSERT IGNORE: it takes the row's exclusive lock at
      // once, where IGNORE's shared lock on a duplicate would deadlock two takers upgrading it.
      await on.query(`INSERT INTO ${p}rate_buckets (name, tokens, updated_at) VALUES (?, ?, ${NOW}) ON DUPLICATE KEY UPDATE tokens = tokens`, [name, burst]);
      const row = (await on.query(`SELECT tokens, updated_at, ${NOW} AS now FROM ${p}rate_buckets WHERE name = ? FOR UPDATE`, [name])).rows[0];
      const bucket = row === undefined ? undefined : { tokens: Number(row.tokens), updatedAt: Number(row.updated_at) };
      const next = takeFromBucket(bucket, Number(row?.now ?? Date.now()), perSecond, burst, want);
      await on.query(`UPDATE ${p}rate_buckets SET tokens = ?, updated_at = ? WHERE name = ?`, [next.tokens, next.updatedAt, name]);
      return grantOf(next.granted, next.tokens, perSecond);
    });
  }
}
