/**
 * Small readers shared by the whitelist's parts (tenants, keys, revoked
 * tokens): each takes an unvalidated field and either gives its value or
 * adds an issue naming the field's place.
 */
import { describeValue, type ValidationIssue } from './errors.ts';

// Full date-time with an explicit zone: a zone-less time would depend on the host's TZ.
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function has(object: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/**
 * A non-empty string of at most `max` characters. `absent` says what may
 * stand for none: nothing (a required field), a missing field, or a missing
 * field or null.
 */
export function readText(
  raw: Record<string, unknown>,
  field: string,
  path: string,
  issues: ValidationIssue[],
  max: number,
  absent: 'required' | 'missing' | 'missing-or-null',
): string | undefined {
  const value = raw[field];
  if (absent !== 'required' && !has(raw, field)) return undefined;
  if (absent === 'missing-or-null' && value === null) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    issues.push({ path: `${path}.${field}`, message: `must be a non-empty string of at most ${max} characters, not ${describeValue(value)}` });
    return undefined;
  }
  return value;
}

/** An ISO-8601 date-time with a zone in ms since the epoch, or NaN for anything else. */
export function isoTimeMs(value: unknown): number {
  return typeof value === 'string' && ISO_DATE_TIME.test(value) ? Date.parse(value) : NaN;
}

/** An optional ISO-8601 date-time with a zone, in ms since the epoch; absent or null: undefined. */
export function readTime(raw: Record<string, unknown>, field: string, path: string, issues: ValidationIssue[]): number | undefined {
  if (!has(raw, field) || raw[field] === null) return undefined;
  const value = raw[field];
  const ms = isoTimeMs(value);
  if (Number.isNaN(ms)) {
    issues.push({ path: `${path}.${field}`, message: `${describeValue(value)} is not an ISO-8601 date-time with a zone, e.g. 2026-12-01T00:00:00Z` });
    return undefined;
  }
  return ms;
}
