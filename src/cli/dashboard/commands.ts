import { SECRET_NAME } from '../../redact.ts';
import { REDACTED } from '../../secret.ts';
import { shellWord } from '../../shell-word.ts';
import { DEFAULT_STORE_URL } from '../../store/open-store.ts';
import type { InstanceInfo } from '../../store/store.ts';
import { redactJson } from './redact.ts';

/**
 * The CLI commands an operator copies from the page: the page itself changes nothing, so every
 * action (reset, rerun, dead-letter retry) stays a command run by someone who can run the job.
 */
export function commandsFor(instance: InstanceInfo, location: string) {
  const params = Object.entries(instance.params).map(([key, value]) => {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    // What the page shows as [redacted] (a redacted param, a secret-named one, a URL's password, a
    // key in a query) cannot be in its commands either: the operator types that value.
    const hidden = value === REDACTED || SECRET_NAME.test(key) || JSON.stringify(redactJson(value)) !== JSON.stringify(value);
    return `--param ${shellWord(`${key}=${hidden ? `<${key}>` : text}`)}`;
  });
  const store = location === DEFAULT_STORE_URL.replace(/^sqlite:/, '') ? [] : [`--store ${shellWord(storeArgument(location))}`];
  const tail = [...params, ...store].join(' ');
  const line = (...words: string[]) => [...words, tail].filter((word) => word !== '').join(' ');
  return {
    resume: line('ckpt run', '<job-file>'),
    rerun: line('ckpt run', '<job-file>', '--rerun'),
    reset: line('ckpt reset', shellWord(instance.job)),
    dlqList: line('ckpt dlq', shellWord(instance.job)),
    dlqRetry: line('ckpt dlq', '<job-file>', '--retry'),
    runs: line('ckpt runs', shellWord(instance.job)),
    events: line('ckpt events', shellWord(instance.job)),
  };
}

/** A store location as a --store value: SQLite paths need their scheme back; URLs keep `***` for the password. */
function storeArgument(location: string): string {
  return /^[a-z]+:\/\//.test(location) ? location : `sqlite:${location}`;
}
