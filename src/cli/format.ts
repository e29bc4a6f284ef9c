import { formatCount } from '../count.ts';
import type { EventMap } from '../events.ts';
import type { JsonValue } from '../json.ts';
import { redactJson } from '../redact.ts';

export { formatCount };

export function formatMs(ms: number): string {
  // A stored duration that is not a number (a hand edit) shows as unknown, not 'NaNhNaNm'.
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  if (minutes < 60) return `${minutes}m${String(seconds).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

export function formatTime(epochMs: number | null): string {
  if (epochMs === null) return '-';
  return isoTime(epochMs)
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/**
 * A stored time as ISO 8601; one no date can hold (a hand edit: 1e300, text) as what was read,
 * `invalid time (1e+300)`, so a tampered event still lists and exports (its edit is --verify's to name).
 */
export function isoTime(epochMs: number): string {
  const date = new Date(epochMs);
  return Number.isNaN(date.getTime()) ? `invalid time (${epochMs})` : date.toISOString();
}

export function formatAge(epochMs: number | null, now = Date.now()): string {
  if (epochMs === null) return 'never';
  if (!Number.isFinite(epochMs)) return formatTime(epochMs);
  return `${formatMs(Math.max(0, now - epochMs))} ago`;
}

export function formatPosition(position: JsonValue | null | undefined): string {
  if (position === null || position === undefined) return 'start';
  return typeof position === 'string' ? position : JSON.stringify(position);
}

/** Params as the CLI shows them: secret-named ones `[redacted]` (redactJson), whatever was stored. */
export function formatParams(params: JsonValue): string {
  const text = JSON.stringify(redactJson(params));
  return text === '{}' ? '-' : text;
}

/** A checkpoint interval as "52,000 records / 1.0 s"; either half may be unknown. */
export function formatInterval(interval: { ms: number | null; records: number | null }): string {
  const parts = [];
  if (interval.records !== null) parts.push(`${formatCount(interval.records)} records`);
  if (interval.ms !== null) parts.push(formatMs(interval.ms));
  return parts.join(' / ') || '-';
}

/** A checkpoint passed over for failing its checksum, in words. */
export function describeCorrupt(data: EventMap['checkpoint:corrupt']): string {
  const skipped = `checkpoint ${data.skipped.join(', ')} of shard ${data.shard} failed its checksum`;
  if (data.refused === true) return `${skipped}; its chunk wrote through ctx.tx: not resumed`;
  return `${skipped}; resuming from ${data.usedSeq === null ? 'the start' : `checkpoint ${data.usedSeq}`}: the records after it are done again`;
}
