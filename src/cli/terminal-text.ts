import type { CliIo } from './shared.ts';

/**
 * Characters a terminal acts on rather than shows: C0 controls but newline and tab, DEL, C1
 * controls (U+009B is a one-byte CSI on some terminals) and the bidirectional overrides that make
 * text read in another order than it is stored. Shard names, errors, params and records come from
 * jobs and stores, not from us: one holding `ESC ]` could retitle a window or rewrite earlier lines.
 * The one sequence the CLI writes itself, the progress line's `CR ESC [2K`, is let through.
 */
const UNSAFE = /\r\x1b\[2K|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every control character shown as `\u001b`-style text: JSON reads it back the same. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (found) => (found.length > 1 ? found : `\\u${found.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** The stream with `write` passing strings through `printable`; everything else is the stream's. */
function guarded(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  return new Proxy(stream, {
    get(target, key) {
      if (key === 'write') {
        return (chunk: unknown, ...rest: unknown[]) =>
          (target.write as (...args: unknown[]) => boolean)(typeof chunk === 'string' ? printable(chunk) : chunk, ...rest);
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * Everything the CLI prints, tables, JSON, progress and errors alike, goes out through `printable`;
 * an export redirected to a file or a pipe is data, written byte for byte (`dataOut`).
 */
export function guardedIo(io: CliIo): CliIo {
  const stdout = guarded(io.stdout);
  return { ...io, stdout, stderr: guarded(io.stderr), dataOut: io.stdout.isTTY ? stdout : io.stdout };
}
