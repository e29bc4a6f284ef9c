import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { UsageError } from '../errors.ts';

/**
 * Open and stat a file source's input. A missing or unreadable input is the operator's to fix
 * (exit 2, one line), not a failed record.
 */
export function inputFile(path: string, kind: string) {
  const inputError = (error: unknown): unknown => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new UsageError(`input file not found: ${path}`, { cause: error });
    if (code === 'EISDIR') return new UsageError(`input is a directory, not ${kind}: ${path}`, { cause: error });
    if (code === 'EACCES') return new UsageError(`input file is not readable: ${path}`, { cause: error });
    return error;
  };
  /**
   * Only a regular file can be read by byte offset, resumed by seeking and read again: a pipe or a
   * FIFO (`/dev/stdin`, `<(cmd)`) fails the first positioned read with ESPIPE, a FIFO's second open
   * (the fingerprint's, the size's) waits for a writer for ever, and a device (`/dev/zero`) never
   * ends a line. Asked before the open, which itself blocks on a FIFO.
   */
  const regularFile = async () => {
    const info = await stat(path);
    if (info.isDirectory()) throw Object.assign(new Error(`EISDIR: ${path}`), { code: 'EISDIR' });
    if (!info.isFile()) {
      throw new UsageError(
        `input is not a regular file (a pipe, a FIFO or a device): ${path}; ${kind} is read by byte offset so that a run can resume, so write the input to a file first`,
      );
    }
    return info;
  };
  const input = {
    async openInput() {
      try {
        await regularFile();
        return await open(path, 'r');
      } catch (error) {
        throw inputError(error);
      }
    },
    async statInput() {
      try {
        return await regularFile();
      } catch (error) {
        throw inputError(error);
      }
    },
    /** Size, mtime and a hash of the first 4 KiB: a rewritten, grown or truncated file changes it. */
    async fingerprint(prefix: string): Promise<string> {
      const info = await input.statInput();
      const handle = await input.openInput();
      try {
        const head = Buffer.alloc(Math.min(4096, info.size));
        await handle.read(head, 0, head.length, 0);
        const digest = createHash('sha256').update(head).digest('hex').slice(0, 16);
        return `${prefix}:size=${info.size}:mtime=${Math.floor(info.mtimeMs)}:head=${digest}`;
      } finally {
        await handle.close();
      }
    },
    /**
     * The file was only appended to since `fingerprint` was taken: it is no shorter, and the bytes
     * that fingerprint hashed (its first 4 KiB, or the whole file if smaller) are unchanged. A
     * rewrite that keeps the head and grows is not seen.
     */
    async continues(fingerprint: string, position: number): Promise<boolean> {
      const then = /:size=(\d+):mtime=\d+:head=([0-9a-f]+)$/.exec(fingerprint);
      if (then === null) return false;
      const size = Number(then[1]);
      const info = await input.statInput();
      if (info.size < size || position > info.size) return false;
      const handle = await input.openInput();
      try {
        const head = Buffer.alloc(Math.min(4096, size));
        await handle.read(head, 0, head.length, 0);
        return createHash('sha256').update(head).digest('hex').slice(0, 16) === then[2];
      } finally {
        await handle.close();
      }
    },
  };
  return input;
}
