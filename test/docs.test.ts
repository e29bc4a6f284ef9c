// The docs hold: every relative link in README.md and docs/*.md resolves (the file, and the
// #anchor to a heading of the target page), and every API a code sample names exists in the
// built package (names imported from 'checkpointed' and its subpaths, `ctx.*` members, `ckpt`
// commands and their flags). The README stays a page read in five minutes: ≤ 200 lines.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ckptBin, repoRoot } from './helpers/cli.ts';
import { type ApiFacts, anchors, checkPage, cliCommands, missingPaths, packageApi } from './helpers/docs-check.ts';

const pages = [
  'README.md',
  ...readdirSync(join(repoRoot, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];
const read = (path: string) => readFileSync(path, 'utf8');
const execFileAsync = promisify(execFile);

/** Which of these paths git ignores (generated: `docs/api/`, `examples/data/`). */
function gitIgnored(paths: string[]): Set<string> {
  const run = spawnSync('git', ['check-ignore', '--no-index', '--stdin'], { cwd: repoRoot, input: paths.join('\n'), encoding: 'utf8' });
  return new Set(run.stdout.split('\n').filter(Boolean));
}

let facts: Promise<ApiFacts> | undefined;
function api(): Promise<ApiFacts> {
  facts ??= (async () => ({
    ...packageApi(repoRoot),
    commands: await cliCommands(async (args) => {
      const run = await execFileAsync(process.execPath, [ckptBin, ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, COLUMNS: '200' } });
      return run.stdout;
    }),
  }))();
  return facts;
}

test('every relative link in README.md and docs/*.md resolves, every repository path they name exists, and every API a code sample names exists', {
  timeout: 60_000,
}, async () => {
  const facts = await api();
  const problems = pages.flatMap((page) => [
    ...checkPage(repoRoot, page, read(join(repoRoot, page)), facts, read),
    ...missingPaths(repoRoot, page, read(join(repoRoot, page)), gitIgnored),
  ]);
  assert.deepEqual(problems, []);
});

test('every command ckpt --help lists has its row in docs/operating.md', { timeout: 60_000 }, async () => {
  const operating = read(join(repoRoot, 'docs', 'operating.md'));
  const undocumented = [...(await api()).commands.keys()].filter((command) => !operating.includes(`| \`ckpt ${command}\` |`));
  assert.deepEqual(undocumented, []);
});

test('the site npm run docs builds holds every page: README.md as its front page, docs/*.md in reading order', () => {
  const config = JSON.parse(read(join(repoRoot, 'typedoc.json'))) as { readme?: string; projectDocuments?: string[] };
  assert.equal(config.readme, 'README.md');
  assert.deepEqual([...(config.projectDocuments ?? [])].sort(), pages.filter((page) => page !== 'README.md').sort());
});

test('README.md is at most 200 lines and opens with the two commands', () => {
  const readme = read(join(repoRoot, 'README.md'));
  assert.ok(readme.split('\n').length <= 200, `README.md has ${readme.split('\n').length} lines`);
  const opening = readme.slice(0, readme.indexOf('\n```', readme.indexOf('```sh') + 1));
  assert.match(opening, /^npm install && npm run demo\b/m);
  assert.match(opening, /^npm test\b/m);
});

test('the check finds a broken link, a missing anchor or path, an unknown export, ctx member, command and flag', { timeout: 60_000 }, async () => {
  const page = [
    '# A page',
    '## Its second heading: here',
    '## A `code` heading',
    'See [the jobs](docs/jobs.md), [this](#its-second-heading-here) and [a site](https://example.com/x).',
    'Broken: [gone](docs/no-such-page.md), [no anchor](docs/jobs.md#no-such-heading), [here](#nowhere), [code](#a-code-heading).',
    '```ts',
    "import { defineJob, notAnExport, type Source } from 'checkpointed';",
    "import { SqliteStore } from 'checkpointed/sqlite';",
    "import 'checkpointed/nowhere';",
    'await ctx.once(key, fn); ctx.tx.sql`…`; ctx.teleport(); ctx.tx.explode();',
    '```',
    '`ckpt run job.ts --rerun --warp-speed`, `ckpt frobnicate x`, `npm run ckpt -- status --json`',
    '`new SqliteStore(path)` from `checkpointed/sqlite`, `new PostgresStore({ pool })` from `checkpointed/sqlite`.',
    '```',
    'ckpt chaos <job-file> [--kills N]',
    '                  [--no-such-flag]',
    '```',
  ].join('\n');
  const problems = checkPage(repoRoot, 'README.md', page, await api(), (path) => (path === join(repoRoot, 'README.md') ? page : read(path)));
  assert.deepEqual(
    problems.sort(),
    [
      "README.md: 'checkpointed' exports no notAnExport",
      "README.md: 'checkpointed/sqlite' exports no PostgresStore",
      "README.md: 'checkpointed/nowhere' is no export path of the package",
      'README.md: ckpt chaos has no flag --no-such-flag',
      'README.md: ckpt has no command frobnicate',
      'README.md: ckpt run has no flag --warp-speed',
      'README.md: ctx has no teleport',
      'README.md: ctx.tx has no explode',
      "README.md: link #a-code-heading: the built site has no #a-code-heading (it drops a heading's code spans: write that heading without them)",
      'README.md: link #nowhere: README.md has no heading #nowhere',
      'README.md: link docs/jobs.md#no-such-heading: docs/jobs.md has no heading #no-such-heading',
      'README.md: link docs/no-such-page.md: docs/no-such-page.md does not exist',
    ].sort(),
  );
  assert.deepEqual(missingPaths(repoRoot, 'README.md', '`src/no-such-file.ts`, `test/docs.test.ts`, `test/no-such-*.test.ts`, `docs/api/`', gitIgnored), [
    'README.md: src/no-such-file.ts does not exist',
    'README.md: test/no-such-*.test.ts does not exist',
  ]);
  assert.ok(anchors('## `ckpt chaos`: a *test*\n## Twice\n## Twice').has('ckpt-chaos-a-test'));
  assert.ok(anchors('## Twice\n## Twice').has('twice-1'));
});
