import type { FileHandle } from 'node:fs/promises';

/** One CSV record's bytes, its terminator included, and the offset just past it. */
export interface RawRecord {
  bytes: Buffer;
  end: number;
  /** The file's last bytes, with no newline outside quotes after them: a record not ended (yet). */
  unended?: true;
}

const NEWLINE = 10;

/**
 * Split a file into CSV records from byte `start`: a record ends at a newline outside quotes.
 * Quotes are counted, not interpreted (an escaped `""` toggles twice), so a malformed field does
 * not derail the split: the record it sits in fails to parse alone and the next one starts
 * clean. A stray quote makes its record run on to the next quote, as in any CSV reader; the text
 * up to there is then one failing record. The bytes of the last record are yielded even without
 * a final newline (or with a quote left open).
 */
export async function* splitRecords(handle: FileHandle, start: number, quote: number, chunkBytes: number): AsyncGenerator<RawRecord> {
  for await (const records of splitRecordPages(handle, start, quote, chunkBytes)) yield* records;
}

/** `splitRecords` a chunk at a time: the records that end in each chunk read (some chunks have none). */
export async function* splitRecordPages(handle: FileHandle, start: number, quote: number, chunkBytes: number): AsyncGenerator<RawRecord[]> {
  const buffer = Buffer.allocUnsafe(chunkBytes);
  let fileOffset = start;
  // The start of a record not ended yet, kept as the chunks read and joined once it ends (joining
  // at every chunk would copy a long quoted record of n bytes n / chunkBytes times). Each byte is
  // scanned once, as it is read.
  let pending: Buffer[] = [];
  let pendingLength = 0;
  let pendingStart = start;
  let inQuotes = false;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, chunkBytes, fileOffset);
    if (bytesRead === 0) break;
    fileOffset += bytesRead;
    const chunk = buffer.subarray(0, bytesRead);
    const ends: number[] = [];
    for (let at = 0; at < chunk.length; at++) {
      const byte = chunk[at];
      if (byte === quote) inQuotes = !inQuotes;
      else if (byte === NEWLINE && !inQuotes) ends.push(pendingLength + at + 1);
    }
    if (ends.length === 0) {
      pending.push(Buffer.from(chunk));
      pendingLength += chunk.length;
      yield [];
      continue;
    }
    const data = pending.length === 0 ? chunk : Buffer.concat([...pending, chunk]);
    let recordStart = 0;
    const records: RawRecord[] = [];
    for (const end of ends) {
      // Copied: the read buffer is reused for the next chunk while the caller holds this record.
      records.push({ bytes: Buffer.from(data.subarray(recordStart, end)), end: pendingStart + end });
      recordStart = end;
    }
    yield records;
    pending = recordStart === data.length ? [] : [Buffer.from(data.subarray(recordStart))];
    pendingLength = data.length - recordStart;
    pendingStart += recordStart;
  }
  if (pendingLength > 0) yield [{ bytes: Buffer.concat(pending), end: pendingStart + pendingLength, unended: true }];
}

/** A line of nothing but a line ending (or spaces): no record. */
export function isBlank(bytes: Buffer): boolean {
  for (const byte of bytes) if (byte !== 10 && byte !== 13 && byte !== 32 && byte !== 9) return false;
  return true;
}
