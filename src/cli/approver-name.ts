/**
 * The name an approval is recorded under: `--by` as typed, in one canonical form (Unicode NFKC,
 * white space trimmed and collapsed, lower case), so that the distinct people a hold or a plan
 * needs cannot be one person typing `ana`, then `Ana` or `ana ` (each counted as another
 * approver before). Empty when nothing but white space was given.
 */
export function approverName(typed: string): string {
  return typed.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
}
