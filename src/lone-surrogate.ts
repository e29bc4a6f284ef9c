/**
 * Half of a UTF-16 pair without its other half. Every store keeps text as UTF-8, which writes
 * each one as U+FFFD, so two names or keys that differ only there become one stored name
 * (String.prototype.isWellFormed does the same test; our lib target lacks it).
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `text` holds a lone surrogate, which no store can keep as it is. */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}
