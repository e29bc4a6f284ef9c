import type { parse as Parse } from 'csv-parse/sync';
import { UsageError } from '../errors.ts';
import { isBlank, splitRecordPages, splitRecords } from './csv-records.ts';
import { paged } from './cursor.ts';
import { inputFile } from './input-file.ts';
import type { Source, SourceItem } from './source.ts';

export interface CsvOptions {
  /**
   * `true` (default): the first record is a header and each record becomes an object keyed by it.
   * A list of names: the file has no header; records become objects with these keys.
   * `false`: no header; each record is an array of its fields.
   */
  columns?: boolean | readonly string[];
  /** Field separator, one character; default `,`. */
  delimiter?: string;
  /** Quote character, one ASCII character; default `"` (doubled inside a quoted field). */
  quote?: string;
  /** Trim spaces around unquoted fields; default false. */
  trim?: boolean;
  /** Bytes read per system call. */
  chunkBytes?: number;
}

/** csv-parse, imported when a CSV source first reads: a job that reads no CSV does not load it. */
let parse: typeof Parse | undefined;
const loadParser = async (): Promise<typeof Parse> => {
  parse ??= (await import('csv-parse/sync')).parse;
  return parse;
};

/** A record: fields by header name, or the fields in order when `columns: false`. */
export type CsvRecord = Record<string, string> | string[];

/**
 * The records of a CSV file (RFC 4180: quoted fields, doubled quotes, newlines inside quotes),
 * parsed with csv-parse. The position is the byte offset just past the record, so a resume seeks
 * there instead of re-reading the file. A record that does not parse, or whose field count is
 * not the header's, is yielded with its raw text and an `error`, so the job's retry and skip
 * policy decide (it ends in dead letters, never silently dropped, never a crashed run).
 */
export function csvFile<R extends CsvRecord = Record<string, string>>(path: string, options: CsvOptions = {}): Source<R, number> {
  const chunkBytes = options.chunkBytes ?? 1 << 16;
  const quote = options.quote ?? '"';
  // The job's options, not the data: no run again fixes them (exit 2, one line).
  if (quote.length !== 1 || quote.charCodeAt(0) > 127) throw new UsageError(`csvFile: quote must be one ASCII character (got ${JSON.stringify(quote)})`);
  const delimiter = options.delimiter ?? ',';
  if (delimiter === '' || delimiter.includes('\n') || delimiter.includes('\r') || delimiter.includes(quote)) {
    throw new UsageError(`csvFile: delimiter must be a non-empty string without a line break or the quote character (got ${JSON.stringify(delimiter)})`);
  }
  const quoteByte = quote.charCodeAt(0);
  const columns = options.columns ?? true;
  if (Array.isArray(columns) && repeatedName(columns) !== undefined) {
    throw new UsageError(`csvFile: columns names ${JSON.stringify(repeatedName(columns))} twice; each record would keep only one of those fields`);
  }
  const input = inputFile(path, 'a CSV file');
  const parseOptions = {
    delimiter,
    quote,
    trim: options.trim ?? false,
    record_delimiter: ['\r\n', '\n'],
  };

  // Called only after readHeader, which loads the parser.
  const fieldsOf = (bytes: Buffer): string[] => {
    const rows = (parse as typeof Parse)(bytes.toString('utf8'), parseOptions) as string[][];
    if (rows.length !== 1) throw new Error(`expected one record, found ${rows.length}`);
    return rows[0] as string[];
  };

  /** The header's names and the offset where data starts (without a header row: 0, or 3 past a BOM). */
  const readHeader = async (): Promise<{ names: readonly string[] | undefined; dataStart: number }> => {
    await loadParser();
    const handle = await input.openInput();
    try {
      // Without a header row the data starts at the file's start, after its BOM if it has one.
      if (columns !== true) {
        const head = Buffer.alloc(3);
        const { bytesRead } = await handle.read(head, 0, 3, 0);
        const dataStart = bytesRead === 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
        return { names: columns === false ? undefined : columns, dataStart };
      }
      for await (const raw of splitRecords(handle, 0, quoteByte, Math.min(chunkBytes, 1 << 14))) {
        if (isBlank(raw.bytes)) continue;
        const bom = raw.bytes[0] === 0xef && raw.bytes[1] === 0xbb && raw.bytes[2] === 0xbf ? 3 : 0;
        let names: string[];
        try {
          names = fieldsOf(raw.bytes.subarray(bom));
        } catch (error) {
          // Without a header no record can be read: the input is the operator's to fix.
          throw new SyntaxError(`${path}: the header row is not valid CSV (${(error as Error).message})`, { cause: error });
        }
        const twice = repeatedName(names);
        if (twice !== undefined) {
          throw new SyntaxError(
            `${path}: the header row names ${JSON.stringify(twice)} twice, so each record would keep only one of those fields; rename one, or give columns: [...]`,
          );
        }
        return { names, dataStart: raw.end };
      }
      return { names: [], dataStart: 0 };
    } finally {
      await handle.close();
    }
  };

  const toItem = (bytes: Buffer, end: number, names: readonly string[] | undefined): SourceItem<R, number> => {
    let fields: string[];
    try {
      fields = fieldsOf(bytes);
    } catch (error) {
      return failed(bytes, end, `is not valid CSV (${(error as Error).message})`);
    }
    if (names === undefined) return { position: end, record: fields as R };
    if (fields.length !== names.length) return failed(bytes, end, `has ${fields.length} fields where the header has ${names.length}`);
    const record: Record<string, string> = {};
    names.forEach((name, index) => {
      // A column named __proto__ is defined, not assigned: a field, not the record's prototype.
      if (name === '__proto__') Object.defineProperty(record, name, { value: fields[index], enumerable: true, writable: true, configurable: true });
      else record[name] = fields[index] as string;
    });
    return { position: end, record: record as R };
  };

  const failed = (bytes: Buffer, end: number, why: string): SourceItem<R, number> => ({
    position: end,
    record: bytes.toString('utf8').replace(/\r?\n$/, '') as unknown as R,
    error: new SyntaxError(`${path}: the record ending at byte ${end} ${why}`),
  });

  return {
    // The records of a chunk are one page: the runner walks them without a promise per record.
    ...paged<R, number>(async function* (after, { signal, growing }) {
      const { names, dataStart } = await readHeader();
      const handle = await input.openInput();
      try {
        for await (const raws of splitRecordPages(handle, Math.max(after ?? 0, dataStart), quoteByte, chunkBytes)) {
          if (signal.aborted) return;
          const page: SourceItem<R, number>[] = [];
          for (const raw of raws) {
            // The file's last bytes, no newline outside quotes after them: a writer may be
            // mid-record, so a file being appended to keeps them for the next read, which finds
            // the record whole.
            if (growing && raw.unended) break;
            if (!isBlank(raw.bytes)) page.push(toItem(raw.bytes, raw.end, names));
          }
          yield page;
        }
      } finally {
        await handle.close();
      }
    }),
    async size() {
      // Splitting is cheap for files of a few tens of megabytes; past that, no ETA.
      if ((await input.statInput()).size > 64 * 1024 * 1024) return undefined;
      const { dataStart } = await readHeader();
      const handle = await input.openInput();
      try {
        let records = 0;
        for await (const raw of splitRecords(handle, dataStart, quoteByte, 1 << 20)) if (!isBlank(raw.bytes)) records++;
        return records;
      } finally {
        await handle.close();
      }
    },
    fingerprint: () => input.fingerprint('csv'),
    continues: (fingerprint, position) => input.continues(fingerprint, position),
  };
}

/** A name given twice (a record keyed by them would keep one of its fields), if any. */
function repeatedName(names: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}
