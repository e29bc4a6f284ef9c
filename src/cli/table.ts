import { printable } from './terminal-text.ts';

/** A cell's line breaks and tabs as `\u000a`-style text: a cell that broke its line could pass for a row of its own. */
const LINE_BREAKING = /[\n\t]/g;

/**
 * A plain text table: a header row, then rows, columns padded to their widest cell. Cells come
 * from stored data (a shard name may hold a line break): made printable and kept to one line
 * first, so each row is one line and the widths are those of what the terminal shows.
 */
export function renderTable(headers: string[], rows: string[][]): string {
  const cells = rows.map((row) =>
    row.map((cell) => printable(cell).replace(LINE_BREAKING, (found) => `\\u${found.charCodeAt(0).toString(16).padStart(4, '0')}`)),
  );
  const widths = headers.map((header, column) => Math.max(header.length, ...cells.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}
