import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..');
export const ckptBin = join(root, 'bin', 'ckpt.js');
export const fixture = (name: string) => join(root, 'test', 'fixtures', name);

export function tempDir(prefix = 'ckpt-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface CkptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Start `ckpt …` as a real child process. */
export function startCkpt(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; done: Promise<CkptResult> } {
  const child = spawn(process.execPath, [ckptBin, ...args], {
    cwd: options.cwd ?? root,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<CkptResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function ckpt(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CkptResult> {
  return startCkpt(args, options).done;
}

/** Run, and SIGKILL the process after `delayMs` unless it ended first. */
export async function runAndKill(args: string[], delayMs: number, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CkptResult> {
  const { child, done } = startCkpt(args, options);
  const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
  const result = await done;
  clearTimeout(timer);
  return result;
}

/** A small deterministic random generator, so a failing crash schedule can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
