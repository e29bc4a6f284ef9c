// What test/docs.test.ts checks in a page of the docs: its relative links resolve (the file, and
// the #anchor against the target page's headings, as GitHub makes them), the repository paths it
// names exist, and every API its code names exists: names imported from 'checkpointed' or a subpath (in the built package's types),
// `ctx.*` members (the context `process` receives), and `ckpt <command> --flag` (the CLI's help).
import { existsSync, globSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** What the code samples are checked against. */
export interface ApiFacts {
  /** Export path ('checkpointed', 'checkpointed/sqlite', …) → the names it exports (values and types). */
  exports: Map<string, Set<string>>;
  /** `ctx.x` → the members of x's type (empty when x is a type parameter such as `state`). */
  context: Map<string, Set<string>>;
  /** CLI command → its flags. */
  commands: Map<string, Set<string>>;
}

/**
 * The anchors of a page's headings, made as GitHub makes them: lowercase, punctuation dropped,
 * spaces to hyphens, repeats numbered. The site `npm run docs` builds (TypeDoc) makes them the
 * same way but drops a heading's code spans first: `site` gives its anchors.
 */
export function anchors(markdown: string, options: { site?: boolean } = {}): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const heading of prose(markdown, { keepCode: true }).matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const text = heading[1]!
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '')
      .replace(/(`+)(?:(?!\1)[\s\S])+?\1/g, (span) => (options.site ? '' : span));
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    out.add(count === 0 ? base : `${base}-${count}`);
  }
  return out;
}

/** The page without its fenced code blocks (and, unless keepCode, without its code spans). */
function prose(markdown: string, options: { keepCode?: boolean } = {}): string {
  const lines: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker) fence = marker;
    else if (fence !== undefined && marker?.startsWith(fence)) fence = undefined;
    else if (fence === undefined) lines.push(options.keepCode ? line : line.replace(/(`+)(?:(?!\1)[\s\S])+?\1/g, 'code'));
    else continue;
  }
  return lines.join('\n');
}

/** The code of a page: its fenced blocks (whole) and its code spans, each a snippet. */
function code(markdown: string): string[] {
  const snippets: string[] = [];
  let fence: string | undefined;
  let block: string[] = [];
  for (const line of markdown.split('\n')) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker) {
      fence = marker;
      block = [];
    } else if (fence !== undefined && marker?.startsWith(fence)) {
      fence = undefined;
      snippets.push(block.join('\n'));
    } else if (fence !== undefined) block.push(line);
    else for (const span of line.matchAll(/(`+)\s?((?:(?!\1)[\s\S])+?)\s?\1/g)) snippets.push(span[2]!);
  }
  return snippets;
}

/** Every problem of one page (its path relative to root), as one line each. */
export function checkPage(root: string, page: string, markdown: string, api: ApiFacts, readPage: (path: string) => string): string[] {
  return [...checkLinks(root, page, markdown, readPage), ...checkCode(page, markdown, api)];
}

/**
 * The repository paths a page names in code spans (`src/…`, `test/…`, `examples/…`, …; a glob
 * such as `src/source/*.test.ts` too) that name nothing: a file moved or renamed since.
 * `ignored` says which of them are generated and gitignored (`docs/api/`), which need not exist.
 */
export function missingPaths(root: string, page: string, markdown: string, ignored: (paths: string[]) => Set<string>): string[] {
  const missing = new Set<string>();
  for (const snippet of code(markdown)) {
    const path = /^(?:src|test|examples|bench|scripts|docs|bin)\/[\w.*/-]*$/.exec(snippet.trim())?.[0];
    if (path === undefined) continue;
    const found = path.includes('*') ? globSync(path, { cwd: root }).length > 0 : existsSync(join(root, path));
    if (!found) missing.add(path);
  }
  const generated = missing.size > 0 ? ignored([...missing]) : new Set<string>();
  return [...missing].filter((path) => !generated.has(path)).map((path) => `${page}: ${path} does not exist`);
}

function checkLinks(root: string, page: string, markdown: string, readPage: (path: string) => string): string[] {
  const problems: string[] = [];
  const text = prose(markdown);
  const targets = [...text.matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g), ...text.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map(
    (match) => match[1]!,
  );
  for (const target of targets) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …: not relative
    const [pathPart = '', anchor] = target.split('#', 2) as [string, string | undefined];
    const file = pathPart === '' ? join(root, page) : resolve(dirname(join(root, page)), decodeURI(pathPart));
    const shown = pathPart === '' ? page : relative(root, file);
    if (relative(root, file).startsWith('..')) {
      problems.push(`${page}: link ${target} leaves the repository`);
      continue;
    }
    if (!existsSync(file)) {
      problems.push(`${page}: link ${target}: ${shown} does not exist`);
      continue;
    }
    if (anchor === undefined) continue;
    if (statSync(file).isDirectory() || extname(file) !== '.md') {
      problems.push(`${page}: link ${target}: an anchor into ${shown}, which is not a page`);
      continue;
    }
    const wanted = decodeURIComponent(anchor);
    const markdownOfTarget = readPage(file);
    if (!anchors(markdownOfTarget).has(wanted)) problems.push(`${page}: link ${target}: ${shown} has no heading #${anchor}`);
    else if (!anchors(markdownOfTarget, { site: true }).has(wanted))
      problems.push(`${page}: link ${target}: the built site has no #${anchor} (it drops a heading's code spans: write that heading without them)`);
  }
  return problems;
}

function checkCode(page: string, markdown: string, api: ApiFacts): string[] {
  const problems = new Set<string>();
  // prose: "`new SqliteStore(path)` from `checkpointed/sqlite`"
  for (const match of markdown.matchAll(/`(?:new\s+)?([A-Za-z_$][\w$]*)[^`]*`\s+from\s+`(checkpointed(?:\/[\w./-]+)?)`/g)) {
    const [, name, path] = match as unknown as [string, string, string];
    const names = api.exports.get(path);
    if (!names) problems.add(`${page}: '${path}' is no export path of the package`);
    else if (!names.has(name)) problems.add(`${page}: '${path}' exports no ${name}`);
  }
  for (const snippet of code(markdown)) {
    // import { a, type B } from 'checkpointed…'; import 'checkpointed…'; import('checkpointed…')
    for (const match of snippet.matchAll(
      /import\s+(?:type\s+)?(?:\{([^}]*)\}\s*from\s*)?['"](checkpointed(?:\/[\w./-]+)?)['"]|import\(\s*['"](checkpointed(?:\/[\w./-]+)?)['"]\s*\)/g,
    )) {
      const path = (match[2] ?? match[3])!;
      const names = api.exports.get(path);
      if (!names) {
        problems.add(`${page}: '${path}' is no export path of the package`);
        continue;
      }
      for (const item of (match[1] ?? '').split(',')) {
        const name = item
          .trim()
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/)[0]!
          .trim();
        if (name && !names.has(name)) problems.add(`${page}: '${path}' exports no ${name}`);
      }
    }
    // ctx.member and ctx.member.member
    for (const match of snippet.matchAll(/\bctx\.([A-Za-z_$][\w$]*)(?:\.([A-Za-z_$][\w$]*))?/g)) {
      const [, first, second] = match as unknown as [string, string, string | undefined];
      const members = api.context.get(first);
      if (!members) problems.add(`${page}: ctx has no ${first}`);
      else if (second !== undefined && members.size > 0 && !members.has(second)) problems.add(`${page}: ctx.${first} has no ${second}`);
    }
    // ckpt <command> [--flags], also as node bin/ckpt.js <command> and npm run ckpt -- <command>;
    // an indented line of flags (`[--x …]`, `--x`) continues the command above it (a synopsis)
    let current: string | undefined;
    for (const line of snippet.split('\n')) {
      const start = /(?:^|[\s(`$"'])(?:ckpt|bin\/ckpt\.js|npm run ckpt --)[ \t]+([a-z][\w-]*)(?=$|[\s`'")\]])(.*)$/.exec(line);
      let rest: string;
      if (start) {
        current = start[1]!;
        rest = start[2]!;
        if (!api.commands.has(current)) {
          problems.add(`${page}: ckpt has no command ${current}`);
          current = undefined;
          continue;
        }
      } else if (current !== undefined && /^\s+(?:\[|--)/.test(line)) rest = line;
      else {
        current = undefined;
        continue;
      }
      const flags = api.commands.get(current)!;
      for (const flag of rest.split(/\s#\s|&&|\/\//)[0]!.matchAll(/(?:^|[\s[(|])(--[a-z][\w-]*)/g)) {
        if (!flags.has(flag[1]!)) problems.add(`${page}: ckpt ${current} has no flag ${flag[1]}`);
      }
    }
  }
  return [...problems];
}

/**
 * From the built package's types (its `exports` map): the names each export path declares, and
 * the members of the context `process` receives (the second parameter of defineJob's `process`).
 */
export function packageApi(root: string): Pick<ApiFacts, 'exports' | 'context'> {
  const manifest = JSON.parse(ts.sys.readFile(join(root, 'package.json'))!) as { name: string; exports: Record<string, string | { types?: string }> };
  const entries = new Map<string, string>();
  for (const [key, value] of Object.entries(manifest.exports)) {
    const types = typeof value === 'string' ? undefined : value.types;
    if (types) entries.set(key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`, join(root, types));
  }
  const program = ts.createProgram([...entries.values()], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2023,
    lib: ['lib.es2023.d.ts'],
    types: [],
  });
  const checker = program.getTypeChecker();
  const exports = new Map<string, Set<string>>();
  for (const [path, file] of entries) {
    const source = program.getSourceFile(file);
    const symbol = source && checker.getSymbolAtLocation(source);
    if (!symbol) throw new Error(`${file} is missing: run npm run build first`);
    exports.set(path, new Set(checker.getExportsOfModule(symbol).map((exported) => exported.name)));
  }
  const rootFile = program.getSourceFile(entries.get(manifest.name)!)!;
  const defineJob = checker.getExportsOfModule(checker.getSymbolAtLocation(rootFile)!).find((exported) => exported.name === 'defineJob');
  if (!defineJob) throw new Error(`${manifest.name} exports no defineJob`);
  return { exports, context: contextOf(checker, defineJob) };
}

function contextOf(checker: ts.TypeChecker, defineJob: ts.Symbol): Map<string, Set<string>> {
  const declaration = checker.getAliasedSymbol(defineJob).valueDeclaration ?? defineJob.valueDeclaration!;
  const signature = checker.getSignaturesOfType(checker.getTypeOfSymbolAtLocation(defineJob, declaration), ts.SignatureKind.Call)[0]!;
  const definition = checker.getTypeOfSymbol(signature.parameters[0]!);
  const process = definition.getProperty('process');
  if (!process) throw new Error("defineJob's definition has no process");
  const processSignature = checker.getSignaturesOfType(checker.getNonNullableType(checker.getTypeOfSymbol(process)), ts.SignatureKind.Call)[0]!;
  const context = checker.getTypeOfSymbol(processSignature.parameters[1]!);
  const out = new Map<string, Set<string>>();
  for (const member of checker.getPropertiesOfType(context)) {
    const type = checker.getNonNullableType(checker.getTypeOfSymbol(member));
    const open = (type.flags & (ts.TypeFlags.TypeParameter | ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0;
    out.set(member.name, new Set(open ? [] : checker.getPropertiesOfType(type).map((inner) => inner.name)));
  }
  return out;
}

/** The CLI's commands and each one's flags, read from `ckpt --help` and `ckpt <command> --help`. */
export async function cliCommands(help: (args: string[]) => Promise<string>): Promise<Map<string, Set<string>>> {
  const top = await help(['--help']);
  const section = top.slice(top.indexOf('Commands:'));
  const commands = [...section.matchAll(/^ {2}([a-z][\w-]*)\b/gm)].map((match) => match[1]!).filter((command) => command !== 'help');
  const helps = await Promise.all(commands.map((command) => help([command, '--help'])));
  return new Map(
    commands.map((command, i) => [command, new Set(['--help', ...[...helps[i]!.matchAll(/(?:^|[\s,])(--[a-z][\w-]*)/g)].map((flag) => flag[1]!)])]),
  );
}
