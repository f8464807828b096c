import { expect } from 'chai';
import {
  call,
  eventually,
  send,
  signToken,
  startGate,
  type Gate,
  type GateOptions,
  type Response,
  type TenantSpec,
} from '../support/gate.ts';
import { signWith, startJwksServer, testCertificate, testKey, type JwksServer, type TlsMaterial } from '../support/jwks.ts';

const OIN_J1 = '00000002000000000001';
const OIN_J2 = '00000002000000000002';
const OIN_J3 = '00000002000000000003';
const OIN_J4 = '00000002000000000004';
const OIN_STATIC = '00000002000000000009';
const LOOPBACK = ['127.0.0.0/8', '::1/128'];
const HS_SECRET = 'static-hs-secret-0123456789abcdefghijkl';

const idpKey = testKey('idp-1', 'RS256');
const rotatedKey = testKey('idp-2', 'ES256');
const strangerKey = testKey('idp-1', 'RS256');
const otherKey = testKey('other-1', 'PS256');

function jwksTenant(oin: string, jwksUri: string, keys: Array<Record<string, unknown>> = []): TenantSpec {
  return { oin, name: oin, cidrs: LOOPBACK, keys, jwksUri };
}

function reasonOf(gate: Gate, res: Response): unknown {
  const requestId = res.headers['x-request-id'];
  return gate.logs.decisions().find((line) => line['requestId'] === requestId)?.['reason'];
}

async function metricsText(gate: Gate): Promise<string> {
  return (await send(gate.adminUrl, { method: 'GET', path: '/metrics' })).text;
}

describe('per-tenant JWKS through the gate', function () {
  let tls: TlsMaterial;
  let idp: JwksServer;
  let gate: Gate | undefined;

  before(async () => {
    tls = await testCertificate();
  });

  beforeEach(async () => {
    idp = await startJwksServer(tls);
  });

  afterEach(async () => {
    await gate?.close();
    gate = undefined;
    await idp.close();
  });

  async function start(tenants: TenantSpec[], options: GateOptions = {}): Promise<Gate> {
    gate = await startGate(tenants, {}, { jwksCa: tls.cert, ...options });
    return gate;
  }

  /** Waits until the tenant's first fetch is done: the gate answers something other than 503. */
  async function ready(g: Gate, oin: string, token: string): Promise<Response> {
    let res: Response | undefined;
    await eventually(async () => {
      res = await call(g.url, { oin }, token);
      expect(res.status).to.not.equal(503);
    });
    return res as Response;
  }

  it('lets a tenant with only a jwksUri call with an RS256 token signed by its IdP, over HTTPS', async () => {
    idp.publish('/j1', [idpKey.jwk]);
    const g = await start([jwksTenant(OIN_J1, idp.uri('/j1'))]);
    const res = await ready(g, OIN_J1, signWith(idpKey, { oin: OIN_J1 }));
    expect(res.status).to.equal(200);
    expect(res.headers['x-authenticated-oin']).to.equal(OIN_J1);

    const forged = await call(g.url, { oin: OIN_J1 }, signWith(strangerKey, { oin: OIN_J1 }));
    expect(forged.status).to.equal(401);
    expect(reasonOf(g, forged)).to.equal('token_bad_signature');
  });

  it('answers 503 unavailable for a tenant whose JWKS never answered, while /readyz and other tenants stay fine', async () => {
    idp.route('/down', { status: 500, body: 'broken' });
    const g = await start([
      jwksTenant(OIN_J2, idp.uri('/down')),
      { oin: OIN_STATIC, cidrs: LOOPBACK, keys: [{ kid: 's1', alg: 'HS256', secret: HS_SECRET }] },
    ]);
    await eventually(() => void expect(idp.hits('/down')).to.be.at.least(1));
    await eventually(() => void expect(g.service.jwks.status()[0]?.lastError).to.equal('status 500'));

    const res = await call(g.url, { oin: OIN_J2 }, signWith(idpKey, { oin: OIN_J2 }));
    expect(res.status).to.equal(503);
    expect(res.json()['error']).to.equal('unavailable');
    expect(reasonOf(g, res)).to.equal('keys_unavailable');

    const readyz = await send(g.adminUrl, { method: 'GET', path: '/readyz' });
    expect(readyz.status).to.equal(200);
    expect(readyz.json()['lastError']).to.equal(null);

    const other = await call(g.url, { oin: OIN_STATIC }, signToken({ oin: OIN_STATIC }, HS_SECRET, { algorithm: 'HS256', keyid: 's1' }));
    expect(other.status).to.equal(200);

    const logged = g.logs.lines.find((line) => line['msg'] === 'jwks set unavailable; the tenant is answered 503');
    expect(logged).to.include({ oin: OIN_J2, jwksUri: idp.uri('/down'), error: 'status 500' });
  });

  it('accepts a key rotated in at the IdP on its first use, through one refetch', async () => {
    idp.publish('/j1', [idpKey.jwk]);
    const g = await start([jwksTenant(OIN_J1, idp.uri('/j1'))]);
    expect((await ready(g, OIN_J1, signWith(idpKey, { oin: OIN_J1 }))).status).to.equal(200);
    expect(idp.hits('/j1')).to.equal(1);

    idp.publish('/j1', [idpKey.jwk, rotatedKey.jwk]);
    const res = await call(g.url, { oin: OIN_J1 }, signWith(rotatedKey, { oin: OIN_J1 }));
    expect(res.status).to.equal(200);
    expect(idp.hits('/j1')).to.equal(2);
  });

  it('answers 100 concurrent requests with an unknown kid with one fetch, and a second burst with none', async () => {
    idp.publish('/j1', [idpKey.jwk]);
    const g = await start([jwksTenant(OIN_J1, idp.uri('/j1'))]);
    await ready(g, OIN_J1, signWith(idpKey, { oin: OIN_J1 }));
    expect(idp.hits('/j1')).to.equal(1);

    const unknown = signWith(otherKey, { oin: OIN_J1 });
    const first = await Promise.all(Array.from({ length: 100 }, () => call(g.url, { oin: OIN_J1 }, unknown)));
    expect(first.map((r) => r.status)).to.deep.equal(Array(100).fill(401));
    expect(idp.hits('/j1')).to.equal(2);

    const second = await Promise.all(Array.from({ length: 100 }, () => call(g.url, { oin: OIN_J1 }, unknown)));
    expect(second.map((r) => r.status)).to.deep.equal(Array(100).fill(401));
    expect(idp.hits('/j1')).to.equal(2);
    expect(reasonOf(g, second[0] as Response)).to.equal('token_unknown_kid');
  });

  it('binds a shared set per tenant: A’s token passes for A only, and a tenant with another set refuses it', async () => {
    idp.publish('/shared', [idpKey.jwk]);
    idp.publish('/same-kid-other-key', [strangerKey.jwk]);
    idp.publish('/other', [otherKey.jwk]);
    const g = await start(
      [
        jwksTenant(OIN_J1, idp.uri('/shared')),
        jwksTenant(OIN_J2, idp.uri('/shared')),
        jwksTenant(OIN_J3, idp.uri('/same-kid-other-key')),
        jwksTenant(OIN_J4, idp.uri('/other')),
      ],
      { jwksRefetchIntervalMs: 0 },
    );
    const tokenA = signWith(idpKey, { oin: OIN_J1 });
    expect((await ready(g, OIN_J1, tokenA)).status).to.equal(200);
    await ready(g, OIN_J2, signWith(idpKey, { oin: OIN_J2 }));
    await ready(g, OIN_J3, tokenA);
    await ready(g, OIN_J4, tokenA);

    const forB = await call(g.url, { oin: OIN_J2 }, tokenA);
    expect(forB.status).to.equal(403);
    expect(reasonOf(g, forB)).to.equal('claim_mismatch');
    expect((await call(g.url, { oin: OIN_J2 }, signWith(idpKey, { oin: OIN_J2 }))).status).to.equal(200);

    const sameKidOtherKey = await call(g.url, { oin: OIN_J3 }, tokenA);
    expect(sameKidOtherKey.status).to.equal(401);
    expect(reasonOf(g, sameKidOtherKey)).to.equal('token_bad_signature');

    const kidUnknown = await call(g.url, { oin: OIN_J4 }, tokenA);
    expect(kidUnknown.status).to.equal(401);
    expect(reasonOf(g, kidUnknown)).to.equal('token_unknown_kid');

    // Even a token claiming J3 and J4 themselves, signed with J1's IdP key, stays out.
    expect((await call(g.url, { oin: OIN_J3 }, signWith(idpKey, { oin: OIN_J3 }))).status).to.equal(401);
    expect((await call(g.url, { oin: OIN_J4 }, signWith(idpKey, { oin: OIN_J4 }))).status).to.equal(401);
  });

  it('accepts a static HS256 key and the JWKS keys of one tenant side by side', async () => {
    idp.publish('/j1', [idpKey.jwk]);
    const g = await start([jwksTenant(OIN_J1, idp.uri('/j1'), [{ kid: 'hs-1', alg: 'HS256', secret: HS_SECRET }])]);
    expect((await ready(g, OIN_J1, signWith(idpKey, { oin: OIN_J1 }))).status).to.equal(200);
    const hs = signToken({ oin: OIN_J1 }, HS_SECRET, { algorithm: 'HS256', keyid: 'hs-1' });
    expect((await call(g.url, { oin: OIN_J1 }, hs)).status).to.equal(200);
  });

  it('refuses a fetched set that reuses a static kid: the old set stays and the log says why', async () => {
    idp.publish('/j1', [idpKey.jwk]);
    const g = await start([jwksTenant(OIN_J1, idp.uri('/j1'), [{ kid: 'hs-1', alg: 'HS256', secret: HS_SECRET }])]);
    await ready(g, OIN_J1, signWith(idpKey, { oin: OIN_J1 }));

    idp.publish('/j1', [idpKey.jwk, { ...rotatedKey.jwk, kid: 'hs-1' }, otherKey.jwk]);
    const unknown = await call(g.url, { oin: OIN_J1 }, signWith(otherKey, { oin: OIN_J1 }));
    expect(unknown.status).to.equal(401, 'the refused set did not bring in other-1');
    expect(idp.hits('/j1')).to.equal(2);

    const hs = signToken({ oin: OIN_J1 }, HS_SECRET, { algorithm: 'HS256', keyid: 'hs-1' });
    expect((await call(g.url, { oin: OIN_J1 }, hs)).status).to.equal(200);
    expect((await call(g.url, { oin: OIN_J1 }, signWith(idpKey, { oin: OIN_J1 }))).status).to.equal(200);
    const collided = await call(g.url, { oin: OIN_J1 }, signWith({ ...rotatedKey, kid: 'hs-1' }, { oin: OIN_J1 }));
    expect(collided.status).to.equal(401);

    const stale = g.logs.lines.find((line) => line['msg'] === 'jwks set is stale; the last good set stays in use');
    expect(stale).to.include({ oin: OIN_J1, outcome: 'refused' });
    expect(stale?.['error']).to.contain('"hs-1", already a static key of this tenant');
    expect(await metricsText(g)).to.contain(`oingate_jwks_fetches_total{oin="${OIN_J1}",outcome="refused"} 1`);
  });

  it('keeps the cached set over a reload that keeps the jwksUri, and fetches anew when it changes', async () => {
    idp.publish('/j1', [idpKey.jwk]);
    idp.publish('/j1-new', [rotatedKey.jwk]);
    const g = await start([jwksTenant(OIN_J1, idp.uri('/j1'))]);
    const token = signWith(idpKey, { oin: OIN_J1 });
    await ready(g, OIN_J1, token);
    expect(idp.hits('/j1')).to.equal(1);

    const before = g.service.holder.current?.version;
    await g.writeWhitelist([{ ...jwksTenant(OIN_J1, idp.uri('/j1')), name: 'renamed' }]);
    await eventually(() => void expect(g.service.holder.current?.version).to.not.equal(before));
    expect((await call(g.url, { oin: OIN_J1 }, token)).status).to.equal(200, 'no 503 gap after the reload');
    expect(idp.hits('/j1')).to.equal(1);

    await g.writeWhitelist([jwksTenant(OIN_J1, idp.uri('/j1-new'))]);
    await eventually(() => void expect(idp.hits('/j1-new')).to.equal(1));
    await eventually(async () => {
      expect((await call(g.url, { oin: OIN_J1 }, signWith(rotatedKey, { oin: OIN_J1 }))).status).to.equal(200);
    });
    expect(idp.hits('/j1-new')).to.equal(1);
    expect(idp.hits('/j1')).to.equal(1);
  });

  it('refreshes in the background every OINGATE_JWKS_TTL seconds, so a key removed at the IdP stops verifying', async () => {
    idp.publish('/j1', [idpKey.jwk, rotatedKey.jwk]);
    gate = await startGate([jwksTenant(OIN_J1, idp.uri('/j1'))], { OINGATE_JWKS_TTL: '1' }, { jwksCa: tls.cert });
    const g = gate;
    expect((await ready(g, OIN_J1, signWith(rotatedKey, { oin: OIN_J1 }))).status).to.equal(200);
    idp.publish('/j1', [idpKey.jwk]);
    const fetched = idp.hits('/j1');
    // No request asks for it: the refresh comes from the TTL setting alone.
    await eventually(() => void expect(idp.hits('/j1')).to.be.greaterThan(fetched), 5_000);
    await eventually(async () => {
      const res = await call(g.url, { oin: OIN_J1 }, signWith(rotatedKey, { oin: OIN_J1 }));
      expect(res.status).to.equal(401);
    }, 5_000);
    expect((await call(g.url, { oin: OIN_J1 }, signWith(idpKey, { oin: OIN_J1 }))).status).to.equal(200);
  });

  it('keeps using a set while its endpoint fails for OINGATE_JWKS_MAX_STALE seconds past the TTL, then answers 503', async function () {
    this.timeout(30_000);
    idp.publish('/j1', [idpKey.jwk]);
    gate = await startGate([jwksTenant(OIN_J1, idp.uri('/j1'))], { OINGATE_JWKS_TTL: '1', OINGATE_JWKS_MAX_STALE: '3' }, { jwksCa: tls.cert });
    const g = gate;
    const token = signWith(idpKey, { oin: OIN_J1 });
    expect((await ready(g, OIN_J1, token)).status).to.equal(200);
    const broke = performance.now();
    idp.route('/j1', { status: 500, body: 'down' });
    await eventually(() => void expect(g.service.jwks.status()[0]?.lastError).to.equal('status 500'), 5_000);
    // Still within TTL + fetch timeout + max stale: the last good set decides.
    expect((await call(g.url, { oin: OIN_J1 }, token)).status).to.equal(200);
    let unavailable: Response | undefined;
    await eventually(async () => {
      unavailable = await call(g.url, { oin: OIN_J1 }, token);
      expect(unavailable.status).to.equal(503);
    }, 20_000, 100);
    // Not before TTL (1 s) + max stale (3 s) have passed since the last good fetch.
    expect(performance.now() - broke).to.be.above(3_000);
    expect(reasonOf(g, unavailable!)).to.equal('keys_unavailable');
    // The endpoint back: the tenant is served again.
    idp.publish('/j1', [idpKey.jwk]);
    await eventually(async () => void expect((await call(g.url, { oin: OIN_J1 }, token)).status).to.equal(200), 10_000, 100);
  });

  it('stops accepting a token already in the verified-token cache once its key leaves the set', async () => {
    const other = testKey('idp-3', 'RS256');
    idp.publish('/j1', [idpKey.jwk, other.jwk]);
    gate = await startGate([jwksTenant(OIN_J1, idp.uri('/j1'))], { OINGATE_JWKS_TTL: '1' }, { jwksCa: tls.cert });
    const g = gate;
    // RS256 signatures are deterministic: the very same token string is presented again and again.
    const token = signWith(other, { oin: OIN_J1 });
    expect((await ready(g, OIN_J1, token)).status).to.equal(200);
    expect((await call(g.url, { oin: OIN_J1 }, token)).status).to.equal(200);
    expect(g.service.tokenCache.size, 'the token is cached').to.be.at.least(1);
    idp.publish('/j1', [idpKey.jwk]);
    await eventually(async () => {
      expect((await call(g.url, { oin: OIN_J1 }, token)).status).to.equal(401);
    }, 5_000);
  });

  it('reports fetches by tenant and outcome, and each tenant’s set age (+Inf when never fetched)', async () => {
    idp.publish('/j1', [idpKey.jwk]);
    idp.route('/down', { status: 404, body: 'gone' });
    const g = await start([jwksTenant(OIN_J1, idp.uri('/j1')), jwksTenant(OIN_J2, idp.uri('/down'))]);
    await ready(g, OIN_J1, signWith(idpKey, { oin: OIN_J1 }));
    await eventually(() => void expect(idp.hits('/down')).to.be.at.least(1));
    await eventually(async () => {
      const text = await metricsText(g);
      expect(text).to.contain(`oingate_jwks_fetches_total{oin="${OIN_J1}",outcome="ok"} 1`);
      expect(text).to.contain(`oingate_jwks_fetches_total{oin="${OIN_J2}",outcome="error"} 1`);
      expect(text).to.contain(`oingate_jwks_age_seconds{oin="${OIN_J2}"} +Inf`);
      const age = new RegExp(`oingate_jwks_age_seconds\\{oin="${OIN_J1}"\\} ([0-9.e+-]+)`).exec(text);
      expect(age, 'age of J1').to.not.equal(null);
      expect(Number(age?.[1])).to.be.within(0, 10);
    });
  });
});
