// A bare pg connection for the variants that write to PostgreSQL without checkpointed.
import { createRequire } from 'node:module';

export async function connectPg(url: string) {
  const pg = createRequire(import.meta.url)('pg') as typeof import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    exec: async (sql: string) => {
      await client.query(sql);
    },
    run: async (sql: string, params: unknown[]) => {
      await client.query({ text: sql, values: params, name: sql.length < 200 ? sql : undefined });
    },
    close: () => client.end(),
  };
}
