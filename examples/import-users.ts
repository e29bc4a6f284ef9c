// Import users from an HR system's CSV export and total them per department. The file has a
// header, quoted fields with commas and line breaks, and one broken row: that row goes to dead
// letters (see `ckpt dlq import-users`; a row the parser rejects is not retried, it would fail
// the same way), the other 99,999 are imported. The
// position is the byte offset of the next record, so a resume seeks straight to it.
// The first run writes the export (100,000 users) into examples/data/.
//
//   ckpt run examples/import-users.ts
//   ckpt dlq import-users                      # the broken row, its byte offset and why
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { csvFile, defineJob } from 'checkpointed';

type User = { employee_id: string; name: string; department: string; notes: string };
type Totals = { users: number; byDepartment: { [department: string]: number } };

const departments = ['Finance', 'Sales, EMEA', 'Engineering', 'Support "Tier 2"', 'Legal'];

function ensureExport(users: number): string {
  const dir = join(import.meta.dirname, 'data');
  const path = join(dir, `users-${users}.csv`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const quote = (field: string) => (/[",\n\r]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field);
  const lines = ['employee_id,name,department,notes'];
  for (let n = 1; n <= users; n++) {
    if (n === Math.ceil(users / 2)) {
      lines.push(`E${n},"Broken "quote,Finance,`); // a stray quote: this row cannot be parsed
      continue;
    }
    const notes = n % 10 === 0 ? `joined ${2000 + (n % 25)}\nreports to E${n - 1}` : '';
    lines.push([`E${n}`, `Person ${n}`, departments[n % departments.length] as string, notes].map(quote).join(','));
  }
  writeFileSync(`${path}.tmp`, `${lines.join('\r\n')}\r\n`);
  renameSync(`${path}.tmp`, path);
  return path;
}

export default defineJob<User, { users: number }, Totals>({
  name: 'import-users',
  params: (raw) => {
    const users = Number(raw.users ?? 100_000);
    if (!Number.isSafeInteger(users) || users < 3) throw new Error(`users must be a whole number ≥ 3 (got ${JSON.stringify(raw.users)})`);
    return { users };
  },
  source: ({ params }) => csvFile<User>(ensureExport(params.users)),
  initialState: () => ({ users: 0, byDepartment: {} }),
  retry: { attempts: 2, backoffMs: 10 },
  skip: { limit: 10 }, // a few broken rows go to dead letters; more than 10 fails the run
  async process(user, ctx) {
    ctx.state.users += 1;
    ctx.state.byDepartment[user.department] = (ctx.state.byDepartment[user.department] ?? 0) + 1;
  },
});
