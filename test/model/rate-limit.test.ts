import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { MAX_BURST, MAX_PER_SECOND } from '../../src/limit/rate.ts';
import { WhitelistError, type ValidationIssue } from '../../src/model/errors.ts';
import { buildSnapshot, type Snapshot } from '../../src/model/snapshot.ts';

const PATTERN = /^[0-9]{20}$/u;
const OIN = '00000001234567890000';
const SECRET = 'at least 32 bytes of secret.....';

function tenant(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { oin: OIN, cidrs: ['192.0.2.0/24'], keys: [{ kid: 'k1', alg: 'HS256', secret: SECRET }], ...extra };
}

function build(...tenants: Array<Record<string, unknown>>): Promise<Snapshot> {
  return buildSnapshot({ tenants }, { oinPattern: PATTERN });
}

async function issues(t: Record<string, unknown>): Promise<readonly ValidationIssue[]> {
  const error = await build(t).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, 'expected the whitelist to be refused').to.be.instanceOf(WhitelistError);
  return (error as WhitelistError).issues;
}

describe('model: a tenant\'s rateLimit (contract §11)', () => {
  it('reads perSecond and burst, burst defaulting to perSecond', async () => {
    expect((await build(tenant({ rateLimit: { perSecond: 10, burst: 25 } }))).tenants.get(OIN)?.rateLimit).to.deep.equal({ perSecond: 10, burst: 25 });
    expect((await build(tenant({ rateLimit: { perSecond: 7 } }))).tenants.get(OIN)?.rateLimit).to.deep.equal({ perSecond: 7, burst: 7 });
  });

  it('means no limit when absent or null (a row with NULL columns)', async () => {
    expect((await build(tenant())).tenants.get(OIN)?.rateLimit).to.equal(undefined);
    expect((await build(tenant({ rateLimit: null }))).tenants.get(OIN)?.rateLimit).to.equal(undefined);
  });

  const bad: Array<[string, unknown, string]> = [
    ['zero', { perSecond: 0 }, 'tenants[0].rateLimit.perSecond'],
    ['a negative rate', { perSecond: -5 }, 'tenants[0].rateLimit.perSecond'],
    ['a fraction', { perSecond: 2.5 }, 'tenants[0].rateLimit.perSecond'],
    ['a numeric string', { perSecond: '10' }, 'tenants[0].rateLimit.perSecond'],
    ['a rate over 1000000', { perSecond: 1e20 }, 'tenants[0].rateLimit.perSecond'],
    ['a burst without a rate', { burst: 5 }, 'tenants[0].rateLimit.perSecond'],
    ['a zero burst', { perSecond: 1, burst: 0 }, 'tenants[0].rateLimit.burst'],
    ['an unknown field', { perSecond: 1, perMinute: 60 }, 'tenants[0].rateLimit'],
    ['a number instead of an object', 100, 'tenants[0].rateLimit'],
    ['an array', [1, 2], 'tenants[0].rateLimit'],
  ];
  for (const [what, value, path] of bad) {
    it(`refuses the whitelist for ${what}, naming the field`, async () => {
      const found = await issues(tenant({ rateLimit: value }));
      expect(found.map((i) => i.path), JSON.stringify(found)).to.include(path);
    });
  }

  it('changes the version when a limit is set or changed, not when the file merely moves it', async () => {
    const none = (await build(tenant())).version;
    const ten = (await build(tenant({ rateLimit: { perSecond: 10 } }))).version;
    const tenSpelled = (await build(tenant({ rateLimit: { burst: 10, perSecond: 10 } }))).version;
    const eleven = (await build(tenant({ rateLimit: { perSecond: 10, burst: 11 } }))).version;
    expect(ten).to.not.equal(none);
    expect(tenSpelled).to.equal(ten);
    expect(eleven).to.not.equal(ten);
    expect((await build(tenant({ rateLimit: null }))).version).to.equal(none);
  });

  it('is described by the JSON Schema with the same bounds and fields', () => {
    const schema = JSON.parse(readFileSync(new URL('../../config/whitelist.schema.json', import.meta.url), 'utf8')) as {
      $defs: { tenant: { properties: Record<string, { required?: string[]; additionalProperties?: boolean; properties?: Record<string, Record<string, unknown>> }> } };
    };
    const limit = schema.$defs.tenant.properties['rateLimit'];
    expect(limit?.required).to.deep.equal(['perSecond']);
    expect(limit?.additionalProperties).to.equal(false);
    expect(limit?.properties?.['perSecond']).to.deep.equal({ type: 'integer', minimum: 1, maximum: MAX_PER_SECOND });
    expect(limit?.properties?.['burst']).to.deep.equal({ type: 'integer', minimum: 1, maximum: MAX_BURST });
  });
});
