// The public root is one page: `src/index.ts` ('checkpointed') exports the names below and no
// others, at most 40, none of them the store contract's. A new public name is a deliberate act:
// it is added here. The store contract lives on 'checkpointed/store', the other types the API
// mentions on 'checkpointed/types', and every backend's path exports the same small set.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { repoRoot } from './helpers/cli.ts';

const ROOT = [
  // a job and a run
  'defineJob',
  'runJob',
  'openStore',
  'shutdownOnSignals',
  'secret',
  'Secret',
  // the sources
  'range',
  'fromArray',
  'fromAsyncIterable',
  'csvFile',
  'ndjsonFile',
  'httpPages',
  'sqlTable',
  'redisStream',
  'jetStream',
  'pgChanges',
  // the errors
  'CheckpointedError',
  'UsageError',
  'DriftError',
  'FencedError',
  'HeldError',
  'JobFailedError',
  'LeaseHeldError',
  'StoreError',
  'StoreUnavailableError',
  'SchemaTooNewError',
  'StoreIdentityError',
  'HttpSourceError',
  'ExitCode',
  // the types a job author and an embedding program name
  'Job',
  'JobDefinition',
  'JobContext',
  'Source',
  'CheckpointSpec',
  'RunOptions',
  'RunSummary',
  'RunEvent',
  'EventMap',
  'JsonValue',
  'JsonObject',
];

const BACKENDS = {
  sqlite: ['SqliteStore', 'SqliteStoreOptions'],
  postgres: ['PostgresStore', 'PostgresStoreOptions', 'PgPool'],
  mysql: ['MysqlStore', 'MysqlStoreOptions', 'MysqlPool'],
};

const faces = ['index', 'types', 'store', ...Object.keys(BACKENDS)];
const program = ts.createProgram(
  faces.map((face) => join(repoRoot, 'src', `${face}.ts`)),
  { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, allowImportingTsExtensions: true, noEmit: true, skipLibCheck: true },
);
const checker = program.getTypeChecker();

/** The names a module exports, types and values alike. */
function exportsOf(face: string): string[] {
  const file = program.getSourceFile(join(repoRoot, 'src', `${face}.ts`));
  assert.ok(file, `src/${face}.ts`);
  const module = checker.getSymbolAtLocation(file);
  assert.ok(module, `src/${face}.ts is a module`);
  return checker
    .getExportsOfModule(module)
    .map((symbol) => symbol.name)
    .sort();
}

test("'checkpointed' exports the pinned names, at most 40", () => {
  assert.ok(ROOT.length <= 40, `${ROOT.length} names pinned`);
  assert.deepEqual(exportsOf('index'), [...ROOT].sort());
});

test('no store contract name at the root; each name has one home', () => {
  const store = exportsOf('store');
  for (const name of ['Store', 'LeaseStore', 'EffectJournal', 'ChainLink', 'ProgressMark', 'Lease', 'Tx'])
    assert.ok(store.includes(name), `checkpointed/store exports ${name}`);
  const seen = new Map<string, string>();
  for (const face of faces) {
    for (const name of exportsOf(face)) {
      assert.equal(seen.get(name), undefined, `${name} is exported by both ${seen.get(name)} and ${face}`);
      seen.set(name, face);
    }
  }
});

test('every backend path exports the same small set: its store class, its options, the pool they take', () => {
  for (const [backend, names] of Object.entries(BACKENDS)) assert.deepEqual(exportsOf(backend), [...names].sort(), `checkpointed/${backend}`);
});
