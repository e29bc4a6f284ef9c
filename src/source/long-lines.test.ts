// A line (NDJSON) or a quoted record (CSV) far longer than a read: its bytes are joined once, when
// it ends. They were joined again at every chunk read, so a 30 MB line took 14 s to read (a line
// of n bytes copied n / chunkBytes times) and a few hundred megabytes ran for hours.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { csvFile } from './csv.ts';
import { ndjsonFile } from './ndjson.ts';
import type { Source } from './source.ts';

const LONG = 16 * 1024 * 1024;

async function timed<R>(source: Source<R, number>): Promise<{ records: R[]; positions: number[]; ms: number }> {
  const started = performance.now();
  const records: R[] = [];
  const positions: number[] = [];
  for await (const item of source.read(undefined, { signal: new AbortController().signal })) {
    records.push(item.record);
    positions.push(item.position);
  }
  return { records, positions, ms: performance.now() - started };
}

test('ndjsonFile reads a 16 MB line in 4 KiB reads in linear time', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'ckpt-long-')), 'in.ndjson');
  const first = `{"note":"${'x'.repeat(LONG)}"}\r\n`;
  writeFileSync(path, `${first}{"n":2}\n{"n":3}`);
  const { records, positions, ms } = await timed(ndjsonFile<{ note?: string; n?: number }>(path, { chunkBytes: 4096 }));
  assert.equal(records.length, 3);
  assert.equal(records[0]?.note?.length, LONG);
  assert.deepEqual(records.slice(1), [{ n: 2 }, { n: 3 }]);
  assert.deepEqual(positions, [first.length, first.length + 8, first.length + 15]);
  assert.ok(ms < 8000, `took ${Math.round(ms)} ms`);
});

test('csvFile reads a 16 MB quoted field in 4 KiB reads in linear time', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'ckpt-long-')), 'in.csv');
  const header = 'id,note\n';
  const first = `1,"${'x\n'.repeat(LONG / 2)}"\r\n`;
  writeFileSync(path, `${header}${first}2,y\n3,"z`);
  const { records, positions, ms } = await timed(csvFile(path, { chunkBytes: 4096 }));
  assert.equal(records.length, 3);
  assert.equal(records[0]?.note?.length, LONG);
  assert.deepEqual(records[1], { id: '2', note: 'y' });
  assert.deepEqual(positions, [header.length + first.length, header.length + first.length + 4, header.length + first.length + 8]);
  assert.ok(ms < 8000, `took ${Math.round(ms)} ms`);
});
