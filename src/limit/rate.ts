import { describeValue, type ValidationIssue } from '../model/errors.ts';

/**
 * A tenant's rate limit: `perSecond` requests refill per second, at most
 * `burst` at once (a full bucket). Both are positive whole numbers.
 */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

/**
 * Far above what one gate serves; the cap keeps the arithmetic exact (the
 * emission interval stays >= 1 µs, a burst window <= 10^12 µs) and refuses
 * typos such as a limit of 10^20.
 */
export const MAX_PER_SECOND = 1_000_000;
export const MAX_BURST = 1_000_000;

const FIELDS = new Set(['perSecond', 'burst']);

/** A `rateLimit` value refused; `issues` name each bad field and its value. */
export class RateLimitError extends Error {
  readonly code = 'ERR_INVALID_RATE_LIMIT';
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[]) {
    const first = issues[0];
    super(first ? `invalid rate limit: ${first.path}: ${first.message}` : 'invalid rate limit');
    this.name = 'RateLimitError';
    this.issues = issues;
  }
}

/**
 * Reads `{perSecond, burst}` (burst defaults to perSecond). `undefined` and
 * `null` mean no limit (a PostgreSQL row with NULL columns). Throws
 * RateLimitError naming `path` and the bad value.
 */
export function parseRateLimit(raw: unknown, path: string): RateLimit | undefined {
  const issues: ValidationIssue[] = [];
  const limit = readRateLimit(raw, path, issues);
  if (issues.length > 0) throw new RateLimitError(issues);
  return limit;
}

/** As parseRateLimit, but appends the problems to `issues` (the whitelist builder collects them all). */
export function readRateLimit(raw: unknown, path: string, issues: ValidationIssue[]): RateLimit | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    issues.push({ path, message: `${describeValue(raw)} must be an object {"perSecond": N, "burst": M}` });
    return undefined;
  }
  const record = raw as Record<string, unknown>;
  const before = issues.length;
  for (const key of Object.keys(record)) {
    if (!FIELDS.has(key)) issues.push({ path, message: `unknown field ${describeValue(key)}` });
  }
  const perSecond = wholeNumber(record['perSecond'], `${path}.perSecond`, MAX_PER_SECOND, issues);
  const burst = record['burst'] === undefined ? perSecond : wholeNumber(record['burst'], `${path}.burst`, MAX_BURST, issues);
  if (issues.length > before || perSecond === undefined || burst === undefined) return undefined;
  return { perSecond, burst };
}

function wholeNumber(value: unknown, path: string, max: number, issues: ValidationIssue[]): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max) return value;
  issues.push({ path, message: `${describeValue(value)} must be a whole number from 1 to ${max}` });
  return undefined;
}
