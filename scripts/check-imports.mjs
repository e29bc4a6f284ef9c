#!/usr/bin/env node
// Fails when the modules under src/ import each other in a circle. Two files that import each
// other are one concern or miss a third, so the import graph must have no cycle: a file's
// imports point down (cli → job → store/source contracts → backends).
//
//   node scripts/check-imports.mjs        the check (`npm run check` runs it); exit 1 on a circle
//   node scripts/check-imports.mjs --all  also lists circles the exceptions below let pass
//   node scripts/check-imports.mjs DIR    checks DIR instead of src/
//
// Every static `import` and `export … from` counts, `import type` included: a type-only circle
// still ties two concerns together. A dynamic `import()` does not (openStore loads a backend that
// way precisely so that the root does not depend on it).
//
// Plain JavaScript, so that it runs under whatever Node is first on PATH.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = resolve(process.argv.slice(2).find((arg) => !arg.startsWith('--')) ?? join(root, 'src'));

/**
 * Folders whose inner circles are known and being cut apart; a circle wholly inside one of them is
 * reported but does not fail the check. Empty: there are none.
 */
const PENDING = [];

const files = listTs(SRC);
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const circles = stronglyConnected(graph).filter((group) => group.length > 1 || graph.get(group[0]).includes(group[0]));

const failing = [];
const pending = [];
for (const group of circles) {
  const names = group.map((file) => relative(dirname(SRC), file).split(sep).join('/')).sort();
  const tolerated = PENDING.some((folder) => names.every((name) => name.startsWith(folder)));
  (tolerated ? pending : failing).push(names);
}

const showAll = process.argv.includes('--all');
for (const names of failing) console.error(`import circle: ${names.join(' ↔ ')}\n  ${cycleThrough(names)}`);
if (showAll) for (const names of pending) console.error(`import circle (pending): ${names.join(' ↔ ')}\n  ${cycleThrough(names)}`);
if (failing.length > 0) {
  console.error(`${failing.length} import circle(s) under ${relative(dirname(SRC), SRC)}/: cut each by moving what both sides need into a third file`);
  process.exit(1);
}
console.log(
  `no import circles among ${files.length} files under ${relative(dirname(SRC), SRC)}/` +
    (pending.length > 0 ? ` (${pending.length} pending in ${PENDING.join(', ')}; --all lists them)` : ''),
);

function listTs(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(path));
    else if (/\.(ts|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

/** The files under src/ that `file` imports statically (relative specifiers only: packages are not ours). */
function importsOf(file) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false);
  const targets = [];
  for (const statement of source.statements) {
    const isImport = ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement);
    const specifier = isImport ? statement.moduleSpecifier : undefined;
    if (!specifier || !ts.isStringLiteral(specifier) || !specifier.text.startsWith('.')) continue;
    const target = resolve(dirname(file), specifier.text.replace(/\.js$/, '.ts'));
    if (target.startsWith(SRC + sep)) targets.push(target);
  }
  return targets;
}

/** Tarjan's algorithm: the groups of files each reachable from every other in its group. */
function stronglyConnected(edges) {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const groups = [];
  const visit = (node) => {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!edges.has(next)) continue;
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node), low.get(next)));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node), index.get(next)));
    }
    if (low.get(node) === index.get(node)) {
      const group = [];
      let member;
      do {
        member = stack.pop();
        onStack.delete(member);
        group.push(member);
      } while (member !== node);
      groups.push(group);
    }
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return groups;
}

/** One concrete cycle through a group, as `a → b → a`, so the edge to cut is plain. */
function cycleThrough(names) {
  const inGroup = new Set(names.map((name) => join(dirname(SRC), name)));
  const start = join(dirname(SRC), names[0]);
  const seen = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const next of graph.get(node)) {
      if (next === start) {
        const path = [start];
        for (let at = node; at !== start; at = seen.get(at)) path.splice(1, 0, at);
        path.push(start);
        return path.map((file) => relative(dirname(SRC), file).split(sep).join('/')).join(' → ');
      }
      if (inGroup.has(next) && !seen.has(next)) {
        seen.set(next, node);
        queue.push(next);
      }
    }
  }
  return '';
}
