import { spawnSync } from 'node:child_process';
import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstLine } from '../errors.ts';
import { redactText } from '../redact.ts';

/**
 * Where an error in a job's own code happened, as `file:line:column`, so the one line a user
 * reads (the failure line, the stored event, the dead letter) points at their code, not ours.
 */

/** This package's own code (src/ and dist/, whichever this module was loaded from): frames there are never the job's. */
const ownRoots = ['src', 'dist'].map((folder) => fileURLToPath(new URL(`../../${folder}/`, import.meta.url)));

interface Frame {
  file: string;
  line: number;
  column: number;
}

/** `at fn (file:///a/b.ts:12:7)` or `at file:///a/b.ts:12:7` or `at /a/b.js:1:2`. */
const FRAME = /^\s*at (?:.*? \()?((?:file:\/\/)?\/[^()]*?|[A-Za-z]:\\[^()]*?):(\d+):(\d+)\)?$/;

function framesOf(stack: string): Frame[] {
  const frames: Frame[] = [];
  for (const text of stack.split('\n')) {
    const match = FRAME.exec(text);
    if (match === null) continue;
    const raw = match[1] ?? '';
    let file = raw;
    try {
      file = raw.startsWith('file://') ? fileURLToPath(raw) : raw;
    } catch {
      // not a file URL after all: keep it as written
    }
    frames.push({ file, line: Number(match[2]), column: Number(match[3]) });
  }
  return frames;
}

const isOwnFrame = (frame: Frame) => ownRoots.some((root) => frame.file.startsWith(root));
const isUserFrame = (frame: Frame) => !isOwnFrame(frame) && !frame.file.includes(`${sep}node_modules${sep}`);

/** The file of the code that called the function calling this one, outside this package (defineJob's caller: the job file). */
export function callerFile(): string | undefined {
  return framesOf(new Error().stack ?? '').find(isUserFrame)?.file;
}

/**
 * The location in the job's code an error comes from: the first frame in the job's file, else
 * the first frame outside this package and node_modules (a helper module of the job), else, for
 * a syntax error, the file and line Node names at the head of its stack. Undefined for an error
 * raised by checkpointed itself.
 */
export function errorLocation(error: unknown, jobFile?: string): string | undefined {
  if (!(error instanceof Error) || typeof error.stack !== 'string') return undefined;
  // Only the frames called from our code count (job code runs below the runner): an error our
  // own code raises is not the job's, even when a program that embeds runJob is above it.
  const all = framesOf(error.stack);
  const firstOwn = all.findIndex(isOwnFrame);
  const frames = firstOwn === -1 ? all : all.slice(0, firstOwn);
  const frame = (jobFile === undefined ? undefined : frames.find((candidate) => candidate.file === jobFile)) ?? frames.find(isUserFrame);
  if (frame !== undefined) return `${display(frame.file)}:${frame.line}:${frame.column}`;
  return syntaxErrorLocation(error);
}

/**
 * Node heads a syntax error's stack with `path:line`, the source line(s) and a caret under the
 * column: `/jobs/x.ts:5\n  process( {\n};\n ^\n\nSyntaxError…`.
 */
function syntaxErrorLocation(error: Error): string | undefined {
  if (!(error instanceof SyntaxError) || typeof error.stack !== 'string') return undefined;
  return syntaxHeadLocation(error.stack);
}

function syntaxHeadLocation(text: string): string | undefined {
  const [head, ...rest] = text.split('\n');
  const match = /^((?:file:\/\/)?(?:\/|[A-Za-z]:\\).*):(\d+)$/.exec(head ?? '');
  if (match === null) return undefined;
  const file = match[1]?.startsWith('file://') ? fileURLToPath(match[1]) : (match[1] ?? '');
  const caret = rest.slice(0, rest.indexOf('')).find((line) => /^\s*\^+\s*$/.test(line));
  const column = caret === undefined ? '' : `:${caret.indexOf('^') + 1}`;
  return `${display(file)}:${match[2]}${column}`;
}

/**
 * Where a file's syntax error is, as Node's own syntax check reports it. V8 keeps the location of
 * an ES module's syntax error out of the error's stack, so a failed import cannot say; this runs
 * only after a load has failed.
 */
export function checkSyntax(file: string): string | undefined {
  const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
  return check.status === 0 ? undefined : syntaxHeadLocation(check.stderr ?? '');
}

/** Relative to the working directory when inside it (`jobs/x.ts`), else absolute. */
function display(file: string): string {
  const inside = relative(process.cwd(), file);
  return inside !== '' && !inside.startsWith('..') && !inside.startsWith(sep) ? inside : file;
}

/** Errors that mean a bug in the code, whose name says more than the message alone. */
const NAMED = new Set(['TypeError', 'ReferenceError', 'RangeError', 'SyntaxError']);

/**
 * One line for an error raised by a job's code: `TypeError: x is not a function at jobs/x.ts:12:7`.
 * It is stored (dead letters, runs, events) and printed: a URL's password or an `?api_key=` that
 * the error quotes (fetch's errors quote the whole URL) is redacted here, before either.
 */
export function describeJobError(error: unknown, jobFile?: string): string {
  const message = redactText(firstLine(error));
  let named = message;
  let where: string | undefined;
  // A hostile error (a getter that throws on name or stack) is described by its message alone.
  try {
    if (error instanceof Error && NAMED.has(error.name) && !message.startsWith(error.name)) named = `${error.name}: ${message}`;
    where = errorLocation(error, jobFile);
  } catch {
    where = undefined;
  }
  return where === undefined ? named : `${named} at ${where}`;
}
