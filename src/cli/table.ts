import { printable } from './terminal-text.ts';

/**
 * A plain text table: a header row, then rows, columns padded to their widest cell. Cells come
 * from stored data: made printable first, so the widths are those of what the terminal shows.
 */
export function renderTable(headers: string[], rows: string[][]): string {
  const cells = rows.map((row) => row.map(printable));
  const widths = headers.map((header, column) => Math.max(header.length, ...cells.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}
