import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p` that always ends: each missing directory from the nearest existing one down, one
 * `mkdir` each, the first failure thrown (ENOENT, EACCES, EEXIST for a file or a dangling
 * symlink in the way). Not `mkdirSync(path, { recursive: true })`: Node's walk goes back and
 * forth for ever, one core at 100 % and SIGTERM never handled, where a parent exists but cannot
 * hold children (a path under /proc, a dangling symlink).
 */
export function makeDirectory(path: string): void {
  const missing: string[] = [];
  for (let at = resolve(path); !existsSync(at); at = dirname(at)) {
    missing.push(at);
    if (dirname(at) === at) break;
  }
  for (const directory of missing.reverse()) {
    try {
      mkdirSync(directory);
    } catch (error) {
      // Made meanwhile by another process: fine if it is a directory.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || !isDirectory(directory)) throw error;
    }
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Flush a directory's entries, so that a file just renamed or linked into it survives a power
 * loss; a file system that cannot open or flush a directory is left as it is (the entry is in
 * place either way).
 */
export function syncDirectory(directory: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(directory, 'r');
    fsyncSync(fd);
  } catch {
    // Not every file system lets a directory be opened and flushed.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
