import { planBody, planId, takeFromRow, toStoredPlan, withApproval } from '../plan-rows.ts';
import type { NewPlan, PlanApproval, PlanStore, RateBucketStore, StoredPlan, TokenGrant } from '../store.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

/** Plans in the main file, written when no job transaction is open (by `ckpt plan` and `ckpt approve`). */
export class SqlitePlans implements PlanStore {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  async savePlan(plan: NewPlan): Promise<StoredPlan> {
    const id = planId(plan);
    this.#db.write(() =>
      this.#db.run(
        "INSERT INTO plans (id, instance_id, hash, body, approvals, created_at) VALUES (?, ?, ?, ?, '[]', ?) ON CONFLICT (id) DO NOTHING",
        id,
        plan.instanceId,
        plan.hash,
        planBody(plan),
        Date.now(),
      ),
    );
    return (await this.plan(id)) as StoredPlan;
  }

  async plan(id: string): Promise<StoredPlan | undefined> {
    const row = this.#db.get('SELECT * FROM plans WHERE id = ?', id);
    return row === undefined ? undefined : toStoredPlan(row);
  }

  async approvePlan(id: string, approval: PlanApproval): Promise<StoredPlan | undefined> {
    const found = this.#db.write(() => {
      const row = this.#db.get('SELECT approvals FROM plans WHERE id = ?', id);
      if (row === undefined) return false;
      this.#db.run('UPDATE plans SET approvals = ? WHERE id = ?', withApproval(row.approvals, approval), id);
      return true;
    });
    return found ? this.plan(id) : undefined;
  }
}

/** Rate buckets in the side file: each take one short write transaction there, whatever the main file's job transaction holds. */
export class SqliteRateBuckets implements RateBucketStore {
  readonly #db: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#db = driver;
  }

  async takeTokens(name: string, perSecond: number, burst: number, want: number): Promise<TokenGrant> {
    const storeId = this.#db.storeId;
    return this.#db.sideWrite(() => {
      const row = this.#db.sideStatement('SELECT tokens, updated_at FROM rate_buckets WHERE store_id = ? AND name = ?').get(storeId, name);
      const next = takeFromRow(row, Date.now(), perSecond, burst, want);
      this.#db
        .sideStatement(
          'INSERT INTO rate_buckets (store_id, name, tokens, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (store_id, name) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at',
        )
        .run(storeId, name, next.tokens, next.updatedAt);
      return next.grant;
    });
  }
}
