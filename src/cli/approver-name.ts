import { UsageError } from '../errors.ts';

/**
 * The name an approval is recorded under: `--by` as typed, in one canonical form (Unicode NFKC,
 * white space trimmed and collapsed, lower case), so that the distinct people a hold or a plan
 * needs cannot be one person typing `ana`, then `Ana` or `ana ` (each counted as another
 * approver before). Empty when nothing but white space was given.
 */
export function approverName(typed: string): string {
  return typed.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
}

/** The longest approver name every store holds (MySQL's approvals.by_name is VARCHAR(255)). */
export const MAX_APPROVER_NAME = 255;
/** The longest reason kept: MySQL's approvals.reason is a TEXT of 65,535 bytes, four a character at most. */
export const MAX_APPROVAL_REASON = 10_000;

/** An approval's `--by` and `--reason` within what every store holds: refused in one line, not 'Data too long' on MySQL alone. */
export function checkApprovalSizes(by: string, reason: string): void {
  if (by.length > MAX_APPROVER_NAME) {
    throw new UsageError(`--by is ${by.length} characters long; an approver's name has at most ${MAX_APPROVER_NAME}`);
  }
  if (reason.length > MAX_APPROVAL_REASON) {
    throw new UsageError(`--reason is ${reason.length} characters long; at most ${MAX_APPROVAL_REASON} (point to a ticket or a document for more)`);
  }
}
