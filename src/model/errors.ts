/** One problem found in a whitelist, with its place (e.g. `tenants[2].cidrs[0]`). */
export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
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
