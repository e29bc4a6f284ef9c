import { dialect as dialectNamed } from '../../store/sql/dialects.ts';
import type { SqlHandle } from '../../store/store.ts';

/** What a query returns: its rows and how many rows it wrote or returned. */
export interface SqlResult<Row> {
  rows: Row[];
  rowCount: number;
}

/**
 * `ctx.tx` (and `setup`'s `tx`): SQL in the transaction its checkpoint commits. `query` takes the
 * store's own placeholders; `sql` writes them for you, so one job runs on every SQL store.
 */
export interface JobSql extends SqlHandle {
  /**
   * A tagged template: every `${value}` becomes a bound parameter in the dialect's placeholder
   * (`?` on SQLite and MySQL, `$1`, `$2`… on PostgreSQL), never text spliced into the SQL.
   * `` await ctx.tx.sql`INSERT INTO seen (id, name) VALUES (${id}, ${name})` ``. Identifiers
   * (table and column names) cannot be parameters: build those with `query`.
   */
  sql<Row = Record<string, unknown>>(strings: TemplateStringsArray, ...values: unknown[]): Promise<SqlResult<Row>>;
}

/** The SQL text and parameters of a tagged template, in `dialect`'s placeholders. */
export function sqlQuery(dialect: string, strings: readonly string[], values: readonly unknown[]): { text: string; params: unknown[] } {
  const d = dialectNamed(dialect);
  let text = strings[0] ?? '';
  for (let index = 0; index < values.length; index++) text += d.placeholder(index + 1) + (strings[index + 1] ?? '');
  return { text, params: [...values] };
}

/** `handle` with `sql` added (a handle that has it already is returned as it is). */
export function jobSql(handle: SqlHandle): JobSql {
  if (typeof (handle as Partial<JobSql>).sql === 'function') return handle as JobSql;
  return {
    dialect: handle.dialect,
    query: (text, params) => handle.query(text, params),
    sql: <Row>(strings: TemplateStringsArray, ...values: unknown[]) => {
      const { text, params } = sqlQuery(handle.dialect, strings, values);
      return handle.query<Row>(text, params);
    },
  };
}
