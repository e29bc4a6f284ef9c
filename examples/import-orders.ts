// Import a day of orders and total the amounts per customer. The first run writes a
// 100,000-line NDJSON file of orders (once); every run resumes from its last checkpoint.
//
//   ckpt run examples/import-orders.ts --param day=2026-11-23
//   IMPORT_PACE=20000 ckpt run examples/import-orders.ts --rerun   # 20,000 orders/s: press Ctrl-C
//   ckpt run examples/import-orders.ts                             # …and it resumes where it stopped
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, ndjsonFile } from 'checkpointed';

interface Order {
  id: number;
  customer: string;
  amountCents: number;
}

type Totals = { orders: number; cents: number; byCustomer: { [customer: string]: number } };

const dataDir = join(import.meta.dirname, 'data');
/** Orders per second, to watch a run long enough to interrupt it; not a param, so not identity. */
const pace = Number(process.env.IMPORT_PACE ?? 0);
const startedAt = performance.now();
let seen = 0;

/** A deterministic day of orders, so every run of the example sees the same file. */
function ensureOrdersFile(day: string, count: number): string {
  const path = join(dataDir, `orders-${day}.ndjson`);
  if (existsSync(path)) return path;
  mkdirSync(dataDir, { recursive: true });
  let seed = [...day].reduce((hash, char) => (hash * 31 + char.charCodeAt(0)) >>> 0, 7);
  const next = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const lines: string[] = [];
  for (let id = 1; id <= count; id++) {
    const order: Order = { id, customer: `customer-${String(Math.floor(next() * 500)).padStart(3, '0')}`, amountCents: 100 + Math.floor(next() * 99_900) };
    lines.push(JSON.stringify(order));
  }
  writeFileSync(`${path}.tmp`, `${lines.join('\n')}\n`);
  renameSync(`${path}.tmp`, path);
  return path;
}

export default defineJob<Order, { day: string; orders: number }, Totals>({
  name: 'import-orders',
  params: (raw) => {
    const day = raw.day ?? '2026-11-22';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`day must be YYYY-MM-DD (got ${JSON.stringify(day)})`);
    const orders = Number(raw.orders ?? 100_000);
    if (!Number.isSafeInteger(orders) || orders < 1) throw new Error(`orders must be a whole number ≥ 1 (got ${JSON.stringify(raw.orders)})`);
    return { day, orders };
  },
  source: ({ params }) => ndjsonFile<Order>(ensureOrdersFile(params.day, params.orders)),
  initialState: () => ({ orders: 0, cents: 0, byCustomer: {} }),
  checkpoint: { everyMs: 1000 },
  async process(order, ctx) {
    if (pace > 0) {
      const ahead = (++seen * 1000) / pace - (performance.now() - startedAt);
      if (ahead > 5) await sleep(ahead);
    }
    const totals = ctx.state;
    totals.orders += 1;
    totals.cents += order.amountCents;
    totals.byCustomer[order.customer] = (totals.byCustomer[order.customer] ?? 0) + order.amountCents;
  },
});
