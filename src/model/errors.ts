/** One problem found in a whitelist, with its place (e.g. `tenants[2].cidrs[0]`). */
export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

/** A short, quoted rendering of a bad scalar for an issue message (never used for secrets). */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return Array.isArray(value) ? 'an array' : value === undefined ? 'a missing value' : `a ${typeof value}`;
}

/** A whitelist refused as a whole. Lists every problem, never a secret. */
export class WhitelistError extends Error {
  readonly code = 'ERR_INVALID_WHITELIST';
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[]) {
    const first = issues[0];
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super(first ? `invalid whitelist: ${first.path}: ${first.message}${more}` : 'invalid whitelist');
    this.name = 'WhitelistError';
    this.issues = issues;
  }
}
