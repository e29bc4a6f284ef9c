import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after } from 'node:test';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
export const ckptBin = join(repoRoot, 'bin', 'ckpt.js');
export const fixture = (name: string) => join(repoRoot, 'test', 'fixtures', name);

export function tempDir(prefix = 'ckpt-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Children still running. A test that fails half-way (a timeout, an assertion) must not leave
 * one behind (least of all a SIGSTOPped one), or this file's process, and npm test, never ends. */
const liveChildren = new Set<ChildProcess>();
after(() => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Start `ckpt …` as a real child process (stdout/stderr collected). */
export function spawnCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [ckptBin, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, CKPT_STORE: undefined, DATABASE_URL: undefined, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  liveChildren.add(child);
  const done = new Promise<CliResult>((resolvePromise) => {
    child.on('close', (code, signal) => {
      liveChildren.delete(child);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return spawnCli(args, options).done;
}

/** Resolves when `predicate` holds on the child's stdout so far (polls), or rejects after `ms`. */
export async function waitForOutput(child: ChildProcess, predicate: (stdout: string) => boolean, ms = 15_000): Promise<string> {
  let seen = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for output; got: ${seen.slice(-500)}`)), ms);
    const check = (chunk: string) => {
      seen += chunk;
      if (predicate(seen)) {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        resolvePromise(seen);
      }
    };
    child.stdout?.on('data', check);
  });
}

/** Asserts the shape of a user error: one line on stderr, no stack trace. */
export function isOneLineError(stderr: string): boolean {
  const lines = stderr.trimEnd().split('\n');
  return lines.length === 1 && lines[0]?.startsWith('ckpt: ') === true && !/\n\s+at /.test(stderr);
}

/**
 * A follower's lag as `ckpt status --json` shows it for the store's one instance: `now()` reads it
 * (entries behind the head, undefined while none is shown) and keeps each reading in `lags`.
 */
export function lagReader(store: string): { lags: number[]; now: () => Promise<number | undefined> } {
  const lags: number[] = [];
  const now = async () => {
    const [status] = JSON.parse((await runCli(['status', '--json', '--store', `sqlite:${store}`])).stdout) as { lag?: { records: number }[] }[];
    const records = status?.lag?.[0]?.records;
    if (records !== undefined) lags.push(records);
    return records;
  };
  return { lags, now };
}
