import type { SqlResult } from '../sql/sql-driver.ts';
import { SqlTx } from '../sql/sql-tx.ts';
import type { Lease } from '../store.ts';
import { postgresDialect } from './postgres-dialect.ts';
import { type PgPool, type PgPoolClient, toResult } from './postgres-driver.ts';

/**
 * The job's transaction on PostgreSQL (the flow is SqlTx's): `BEGIN`, then the lease bound as
 * LOCAL settings (`idle_in_transaction_session_timeout`, `lock_timeout`, and TCP keepalives
 * shortened to match), so the pooled connection goes back as it came.
 */
export class PostgresTx extends SqlTx<PgPoolClient> {
  readonly #pool: () => Promise<PgPool>;

  constructor(lease: Lease, pool: () => Promise<PgPool>, location: string) {
    super(lease, postgresDialect, location);
    this.#pool = pool;
  }

  readonly #onError = (error: Error) => {
    this.broken = error;
  };

  protected async open(): Promise<PgPoolClient> {
    const client = await (await this.#pool()).connect();
    client.on('error', this.#onError);
    try {
      await client.query('BEGIN');
      const boundMs = Math.max(this.lease.leaseMs, postgresDialect.frozenSessionMs);
      const keepaliveS = String(Math.max(1, Math.ceil(boundMs / 3000)));
      await client.query(
        `SELECT set_config('idle_in_transaction_session_timeout', $1, true), set_config('lock_timeout', $1, true),
           set_config('tcp_keepalives_idle', $2, true), set_config('tcp_keepalives_interval', $2, true), set_config('tcp_keepalives_count', '3', true)`,
        [String(boundMs), keepaliveS],
      );
    } catch (error) {
      this.broken = error as Error;
      await this.release(client);
      throw error;
    }
    return client;
  }

  protected async send(client: PgPoolClient, sql: string, values: unknown[]): Promise<SqlResult> {
    return toResult(await client.query(sql, values));
  }

  protected async release(client: PgPoolClient): Promise<void> {
    client.off('error', this.#onError);
    client.release(this.broken ?? false);
  }

  async limitIdle(ms: number): Promise<void> {
    await this.query(postgresDialect.idleLimit(ms));
  }
}
