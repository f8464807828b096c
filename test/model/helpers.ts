/** Shared helpers for the model tests: build a whitelist, collect its refusal. */
import { expect } from 'chai';
import { WhitelistError, type ValidationIssue } from '../../src/model/errors.ts';
import { StreamedTenants, TenantPacker, type PackedTenantFields } from '../../src/model/packed-tenants.ts';
import { buildSnapshot, type Snapshot } from '../../src/model/snapshot.ts';

export const DEFAULT_PATTERN = /^[0-9]{20}$/u;
export const OIN = '00000001234567890000';
export const OIN_2 = '00000001234567890001';
export const SECRET = 'at least 32 bytes of secret.....';

export function build(document: unknown, oinPattern: RegExp = DEFAULT_PATTERN): Promise<Snapshot> {
  return buildSnapshot(document, { oinPattern });
}

/** Builds, expects a refusal, and returns every issue. */
export async function issuesOf(document: unknown, oinPattern: RegExp = DEFAULT_PATTERN): Promise<readonly ValidationIssue[]> {
  try {
    await build(document, oinPattern);
  } catch (error) {
    expect(error).to.be.instanceOf(WhitelistError);
    const refusal = error as WhitelistError;
    expect(refusal.code).to.equal('ERR_INVALID_WHITELIST');
    expect(refusal.issues.length).to.be.greaterThan(0);
    return refusal.issues;
  }
  throw new Error('expected the whitelist to be refused, it was accepted');
}

/** Expects exactly one issue at `path` and returns it. */
export async function oneIssue(document: unknown, path: string, oinPattern: RegExp = DEFAULT_PATTERN): Promise<ValidationIssue> {
  const issues = await issuesOf(document, oinPattern);
  const at = issues.filter((issue) => issue.path === path);
  expect(at, `issues at ${path}: ${JSON.stringify(issues)}`).to.have.length(1);
  return at[0] as ValidationIssue;
}

export function tenant(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    oin: OIN,
    name: 'Gemeente Voorbeeld',
    enabled: true,
    cidrs: ['203.0.113.0/24', '2001:db8:1::/48'],
    keys: [{ kid: 'gv-2026', alg: 'HS256', secret: SECRET }],
    ...overrides,
  };
}

export function doc(...tenants: unknown[]): Record<string, unknown> {
  return { tenants };
}

/** The OIN of tenant number `i`, distinct for every i below 10^19. */
export function oinOf(i: number): string {
  return `1${String(i).padStart(19, '0')}`;
}

/** `count` distinct IPv4 /24 ranges (count at most 65,536). */
export function v4Ranges(count: number, first = 0): string[] {
  return Array.from({ length: count }, (_, k) => {
    const i = first + k;
    return `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
  });
}

/**
 * `document` as the file store gives a large file's: its tenants arriving
 * `perChunk` at a time, a turn of the event loop apart, each written as
 * JSON.stringify writes it; the rest of the document at the end.
 */
export function streamedDocument(document: { tenants: readonly unknown[] } & Record<string, unknown>, perChunk: number): { tenants: StreamedTenants } {
  const stream = new StreamedTenants();
  const chunks: PackedTenantFields[] = [];
  const packer = new TenantPacker((fields) => chunks.push(fields), perChunk);
  for (const one of document.tenants) packer.element(one, JSON.stringify(one));
  chunks.push(packer.fields());
  const rest = { ...document, tenants: null };
  const feed = (index: number): void => {
    if (index === chunks.length) stream.finish(rest);
    else {
      stream.add(chunks[index]!);
      setImmediate(feed, index + 1);
    }
  };
  setImmediate(feed, 0);
  return { tenants: stream };
}

/** Waits until every tenant of `list` has arrived (rejects when the read failed). */
export async function arrived(list: StreamedTenants): Promise<StreamedTenants> {
  for (let arrival = list.arrival(); arrival !== undefined; arrival = list.arrival()) await arrival;
  return list;
}
