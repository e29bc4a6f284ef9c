// No import circles under src/ (`node scripts/check-imports.mjs`, also run by `npm run check`):
// two files that import each other are one concern or miss a third.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from './helpers/cli.ts';

const script = join(repoRoot, 'scripts', 'check-imports.mjs');

test('src/ has no import circles', () => {
  const run = spawnSync(process.execPath, [script], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^no import circles among \d+ files under src\/$/m);
});

test('the check names a circle, type-only imports included, and fails on it', () => {
  const dir = tempDir('ckpt-circles-');
  mkdirSync(join(dir, 'room'));
  writeFileSync(join(dir, 'room', 'a.ts'), "import type { B } from './b.ts';\nexport type A = B[];\n");
  writeFileSync(join(dir, 'room', 'b.ts'), "import { c } from '../c.ts';\nexport type B = string;\nexport const b = c;\n");
  writeFileSync(join(dir, 'c.ts'), "export { a } from './room/d.ts';\nexport const c = 1;\n");
  writeFileSync(
    join(dir, 'room', 'd.ts'),
    "import type { B } from './b.ts';\nexport const a: B = 'a';\n// import('./a.ts') is dynamic: not a circle\nexport const lazy = () => import('./a.ts');\n",
  );
  const run = spawnSync(process.execPath, [script, dir], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(run.status, 1, run.stdout + run.stderr);
  assert.match(run.stderr, /^import circle: ckpt-circles-\w+\/c\.ts ↔ ckpt-circles-\w+\/room\/b\.ts ↔ ckpt-circles-\w+\/room\/d\.ts$/m);
  assert.match(run.stderr, /c\.ts → \S+\/room\/d\.ts → \S+\/room\/b\.ts → \S+\/c\.ts$/m);
  assert.doesNotMatch(run.stderr, /a\.ts/);
  assert.match(run.stderr, /^1 import circle\(s\)/m);
});
