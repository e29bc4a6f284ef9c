import { paged } from './cursor.ts';
import { inputFile } from './input-file.ts';
import type { Source, SourceItem } from './source.ts';

export interface NdjsonOptions {
  /** Bytes read per system call. */
  chunkBytes?: number;
}

/**
 * One JSON value per line of a file. The position is the byte offset just past the record's
 * line, so a resume seeks to it instead of re-reading the file. Blank lines are skipped; a line
 * that is not JSON is yielded with its raw text and an `error`, so the job's retry and skip
 * policy decide (it ends in dead letters, never silently dropped).
 */
export function ndjsonFile<R = unknown>(path: string, options: NdjsonOptions = {}): Source<R, number> {
  const chunkBytes = options.chunkBytes ?? 1 << 16;
  const input = inputFile(path, 'an NDJSON file');
  const { openInput, statInput } = input;
  return {
    // The lines of a chunk are one page: the runner walks them without a promise per record.
    ...paged<R, number>(async function* (after, { signal, growing }) {
      const handle = await openInput();
      try {
        let fileOffset = after ?? 0;
        // The start of a line not ended yet, kept as the chunks read (joined once its newline comes:
        // joining at every chunk would copy a line of n bytes n / chunkBytes times).
        let pending: Buffer[] = [];
        let pendingStart = fileOffset;
        const buffer = Buffer.allocUnsafe(chunkBytes);
        for (;;) {
          if (signal.aborted) return;
          const { bytesRead } = await handle.read(buffer, 0, chunkBytes, fileOffset);
          if (bytesRead === 0) break;
          fileOffset += bytesRead;
          const chunk = buffer.subarray(0, bytesRead);
          if (chunk.indexOf(10) === -1) {
            pending.push(Buffer.from(chunk));
            yield [];
            continue;
          }
          const data = pending.length === 0 ? chunk : Buffer.concat([...pending, chunk]);
          const page: SourceItem<R, number>[] = [];
          let lineStart = 0;
          for (let newline = data.indexOf(10, lineStart); newline !== -1; newline = data.indexOf(10, lineStart)) {
            const line = data.toString('utf8', lineStart, newline).trim();
            lineStart = newline + 1;
            if (line === '') continue;
            page.push(parseLine<R>(line, path, pendingStart + lineStart));
          }
          yield page;
          pending = lineStart === data.length ? [] : [Buffer.from(data.subarray(lineStart))];
          pendingStart += lineStart;
        }
        // No line break after it: a writer may be mid-line. A file being appended to keeps it for
        // the next read (whose position is before it), which finds it whole.
        if (growing) return;
        const rest = Buffer.concat(pending);
        const last = rest.toString('utf8').trim();
        if (last !== '') yield [parseLine<R>(last, path, pendingStart + rest.length)];
      } finally {
        await handle.close();
      }
    }),
    async size() {
      // Counting lines is cheap for files of a few tens of megabytes; past that, no ETA.
      const info = await statInput();
      if (info.size > 64 * 1024 * 1024) return undefined;
      const handle = await openInput();
      try {
        const data = await handle.readFile();
        // Records: lines with something besides white space (blank lines are skipped by the read).
        let records = 0;
        let start = 0;
        for (let end = data.indexOf(10); ; end = data.indexOf(10, start)) {
          const stop = end === -1 ? data.length : end;
          for (let at = start; at < stop; at++) {
            const byte = data[at];
            if (byte !== 32 && byte !== 9 && byte !== 13) {
              records++;
              break;
            }
          }
          if (end === -1) break;
          start = end + 1;
        }
        return records;
      } finally {
        await handle.close();
      }
    },
    fingerprint: () => input.fingerprint('ndjson'),
    continues: (fingerprint, position) => input.continues(fingerprint, position),
  };
}

/** `position` is the offset just past the line: where the next read starts. */
function parseLine<R>(line: string, path: string, position: number): SourceItem<R, number> {
  try {
    return { position, record: JSON.parse(line) as R };
  } catch (error) {
    const reason = new SyntaxError(`${path}: the line ending at byte ${position} is not JSON (${(error as Error).message})`);
    return { position, record: line as R, error: reason };
  }
}
