/**
 * Half of a UTF-16 pair without its other half. Every store keeps text as UTF-8, which writes
 * each one as U+FFFD, so two names or keys that differ only there become one stored name
 * (String.prototype.isWellFormed does the same test; our lib target lacks it).
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** Whether `text` holds a lone surrogate, which no store can keep as it is. */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/** `text` with each lone surrogate written as U+FFFD, as a store would keep it. */
export function withoutLoneSurrogates(text: string): string {
  return text.replace(LONE_SURROGATES, '\uFFFD');
}
