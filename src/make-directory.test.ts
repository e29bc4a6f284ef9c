import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeDirectory } from './make-directory.ts';

test('makeDirectory makes every missing level, and is quiet when the directory is there', () => {
  const root = mkdtempSync(join(tmpdir(), 'mkdir-'));
  try {
    const deep = join(root, 'a', 'b', 'c');
    makeDirectory(deep);
    assert.ok(statSync(deep).isDirectory());
    makeDirectory(deep);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('makeDirectory ends with an error where a parent cannot hold children (Node’s recursive mkdir spins for ever there)', () => {
  const root = mkdtempSync(join(tmpdir(), 'mkdir-'));
  try {
    symlinkSync(join(root, 'nowhere'), join(root, 'dangling'));
    assert.throws(() => makeDirectory(join(root, 'dangling', 'store')), { code: 'EEXIST' });
    writeFileSync(join(root, 'file'), '');
    assert.throws(() => makeDirectory(join(root, 'file', 'store')), { code: 'ENOTDIR' });
    if (process.platform === 'linux') assert.throws(() => makeDirectory('/proc/ckpt-no-such/store'), { code: 'ENOENT' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
