import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import {
  MAX_CIDRS_PER_TENANT,
  MAX_ISSUER_AUDIENCE_LENGTH,
  MAX_KEYS_PER_TENANT,
  MAX_REVOCATION_TEXT_LENGTH,
  MAX_REVOKED_TOKENS,
  MAX_TENANTS,
} from '../../src/model/limits.ts';
import { build, doc, tenant } from './helpers.ts';

type Json = Record<string, any>;

const schema = JSON.parse(readFileSync(new URL('../../config/whitelist.schema.json', import.meta.url), 'utf8')) as Json;
const tenantSchema = schema['$defs']['tenant'] as Json;

describe('config/whitelist.schema.json', () => {
  it('states the same limits as the model', () => {
    expect(schema['properties']['tenants']['maxItems']).to.equal(MAX_TENANTS);
    expect(tenantSchema['properties']['cidrs']['maxItems']).to.equal(MAX_CIDRS_PER_TENANT);
    expect(tenantSchema['properties']['keys']['maxItems']).to.equal(MAX_KEYS_PER_TENANT);
  });

  it('describes revoked tokens with the model\'s limits and fields', async () => {
    expect(schema['properties']['revokedTokens']['maxItems']).to.equal(MAX_REVOKED_TOKENS);
    const entry = schema['$defs']['revokedToken'] as Json;
    expect(entry['additionalProperties']).to.equal(false);
    expect(entry['required']).to.deep.equal(['jti', 'oin']);
    expect(entry['properties']['jti']).to.deep.include({ minLength: 1, maxLength: MAX_REVOCATION_TEXT_LENGTH });
    // Every field the schema names is accepted by the model.
    const oin = tenant()['oin'];
    await build({ tenants: [tenant()], revokedTokens: [{ jti: 'j', oin, expiresAt: '2026-12-01T00:00:00Z', reason: 'r' }] });
    expect(Object.keys(entry['properties'] as Json).sort()).to.deep.equal(['expiresAt', 'jti', 'oin', 'reason']);
  });

  it('describes issuer and audience as the model checks them', () => {
    for (const field of ['issuer', 'audience']) {
      expect(tenantSchema['properties'][field], field).to.deep.include({ type: 'string', minLength: 1, maxLength: MAX_ISSUER_AUDIENCE_LENGTH });
    }
  });

  it('names exactly the tenant fields the model accepts', async () => {
    const fields = Object.keys(tenantSchema['properties'] as Json);
    expect(tenantSchema['additionalProperties']).to.equal(false);
    // Every schema field is accepted by the model...
    const all = Object.fromEntries(fields.map((f) => [f, tenant({ issuer: 'x', audience: 'x', jwksUri: 'https://idp.example/jwks', authentication: 'token', rateLimit: { perSecond: 1 }, tokensIssuedAfter: '2026-12-01T00:00:00Z' })[f]]));
    await build(doc(tenant(all)));
    // ...and the model refuses one the schema does not name.
    await build(doc(tenant({ issuerr: 'x' }))).then(
      () => expect.fail('an unknown field was accepted'),
      (error: Error) => expect(error.message).to.include('"issuerr"'),
    );
  });
});
