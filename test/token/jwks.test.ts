import { expect } from 'chai';
import { buildSnapshot, type Tenant } from '../../src/model/snapshot.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { BACKGROUND_FETCHES, JwksCache, MAX_OPEN_FETCHES, type JwksCacheOptions, type JwksFetchOutcome } from '../../src/token/jwks.ts';
import { verifyTenantToken } from '../../src/token/verify.ts';
import { eventually, LogCapture } from '../support/gate.ts';
import { signWith, startJwksServer, testCertificate, testKey, type JwksServer, type TlsMaterial } from '../support/jwks.ts';

const OIN_1 = '00000009000000000001';
const OIN_2 = '00000009000000000002';
const POLICY = { clockToleranceSeconds: 30, maxLifetimeSeconds: 3600 };

async function tenantWith(oin: string, jwksUri: string | undefined, keys: Array<Record<string, unknown>> = []): Promise<Tenant> {
  const snapshot = await buildSnapshot(
    { tenants: [{ oin, cidrs: ['127.0.0.0/8'], keys, ...(jwksUri !== undefined ? { jwksUri } : {}) }] },
    { oinPattern: /^[0-9]{20}$/ },
  );
  return snapshot.tenants.get(oin) as Tenant;
}

const key1 = testKey('k1', 'RS256');
const key2 = testKey('k2', 'ES256');
const key3 = testKey('k3', 'PS256');

describe('JwksCache', function () {
  let http: JwksServer;
  let https: JwksServer;
  let tls: TlsMaterial;
  const caches: JwksCache[] = [];
  let fetches: Array<[string, JwksFetchOutcome]>;
  let logs: LogCapture;
  let clock: number | undefined;

  function cache(options: Partial<JwksCacheOptions> = {}): JwksCache {
    const created = new JwksCache({
      ttlSeconds: 300,
      maxStaleSeconds: 3600,
      jitterRatio: 0,
      logger: createLogger('debug', logs),
      onFetch: (oin, outcome) => fetches.push([oin, outcome]),
      now: () => clock ?? Date.now(),
      ...options,
    });
    caches.push(created);
    return created;
  }

  async function loaded(jwks: JwksCache, tenant: Tenant): Promise<void> {
    await eventually(() => void expect(jwks.keysFor(tenant)).to.not.equal(undefined));
  }

  function kids(jwks: JwksCache, tenant: Tenant): string[] | undefined {
    return jwks.keysFor(tenant)?.list.map((k) => k.kid);
  }

  function statusOf(jwks: JwksCache, oin: string) {
    const found = jwks.status().find((s) => s.oin === oin);
    if (!found) throw new Error(`no status for ${oin}`);
    return found;
  }

  before(async () => {
    tls = await testCertificate();
  });

  beforeEach(async () => {
    http = await startJwksServer();
    https = await startJwksServer(tls);
    fetches = [];
    logs = new LogCapture();
    clock = undefined;
  });

  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    await http.close();
    await https.close();
  });

  it('keeps at most maxOpenFetches fetches open while endpoints hang, and fetches all sets in the end', async () => {
    const maxOpenFetches = 12;
    const count = maxOpenFetches * 2;
    const oins = Array.from({ length: count }, (_, i) => `000000090000000001${String(i).padStart(2, '0')}`);
    for (const [i] of oins.entries()) http.route(`/t${i}`, { hang: true });
    const tenants = await Promise.all(oins.map((oin, i) => tenantWith(oin, http.uri(`/t${i}`))));
    const jwks = cache({ timeoutMs: 1_500, retryMs: 100, slotHoldMs: 20, maxOpenFetches });
    jwks.sync(tenants);
    const inFlight = () => oins.reduce((sum, _, i) => sum + http.hits(`/t${i}`), 0);
    await eventually(() => void expect(inFlight()).to.equal(maxOpenFetches));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(inFlight(), 'no more start while the first ones hang').to.equal(maxOpenFetches);
    expect(http.openConnections()).to.equal(maxOpenFetches);
    // The endpoints answer from now on: the waiting fetches follow, the hung ones retry.
    for (const [i] of oins.entries()) http.publish(`/t${i}`, [key1.jwk]);
    for (const tenant of tenants) await eventually(() => void expect(jwks.keysFor(tenant)).to.not.equal(undefined), 10_000);
  });

  it(`starts at most ${BACKGROUND_FETCHES} fetches per slot hold, so tenants of one provider reach it a few at a time`, async () => {
    const count = BACKGROUND_FETCHES * 3;
    const oins = Array.from({ length: count }, (_, i) => `000000090000000002${String(i).padStart(2, '0')}`);
    for (const [i] of oins.entries()) http.route(`/s${i}`, { hang: true });
    const tenants = await Promise.all(oins.map((oin, i) => tenantWith(oin, http.uri(`/s${i}`))));
    const jwks = cache({ timeoutMs: 3_000, slotHoldMs: 1_000 });
    jwks.sync(tenants);
    const inFlight = () => oins.reduce((sum, _, i) => sum + http.hits(`/s${i}`), 0);
    await eventually(() => void expect(inFlight()).to.equal(BACKGROUND_FETCHES));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(inFlight(), 'the slots are held for the first second').to.equal(BACKGROUND_FETCHES);
    await eventually(() => void expect(inFlight()).to.equal(BACKGROUND_FETCHES * 2), 2_000);
  });

  it('fetches a healthy set within 5 s of start while a hundred endpoints accept and never answer', async function () {
    this.timeout(30_000);
    const hanging = await Promise.all(Array.from({ length: 100 }, () => startJwksServer()));
    try {
      for (const server of hanging) server.route('/jwks', { hang: true });
      http.publish('/jwks', [key1.jwk]);
      const stuck = await Promise.all(
        hanging.map((server, i) => tenantWith(`00000009000000001${String(i).padStart(3, '0')}`, server.uri())),
      );
      const healthy = await tenantWith(OIN_1, http.uri());
      const jwks = cache(); // the defaults: 5 s timeout, BACKGROUND_FETCHES slots
      const started = Date.now();
      // The healthy tenant comes last: every hanging one is ahead of it.
      jwks.sync([...stuck, healthy]);
      await eventually(() => void expect(jwks.keysFor(healthy)).to.not.equal(undefined), 5_000);
      const elapsed = Date.now() - started;
      expect(elapsed).to.be.lessThan(5_000);
      expect(http.hits()).to.equal(1);
      const open = hanging.reduce((sum, server) => sum + server.openConnections(), 0);
      expect(open, 'the hanging fetches are still open, within the bound').to.be.at.most(MAX_OPEN_FETCHES).and.at.least(90);
      const token = signWith(key1, { oin: OIN_1 });
      expect(verifyTenantToken(token, jwks.keysFor(healthy)!, POLICY, Date.now()).ok).to.equal(true);
    } finally {
      await Promise.all(caches.splice(0).map((c) => c.close()));
      await Promise.all(hanging.map((server) => server.close()));
    }
  });

  it('counts unknown-kid refetches in the same bound on open fetches, and fetches again once there is room', async () => {
    http.publish('/jwks', [key1.jwk]);
    http.route('/h1', { hang: true });
    http.route('/h2', { hang: true });
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ timeoutMs: 600, retryMs: 60_000, slotHoldMs: 10, maxOpenFetches: 2, refetchIntervalMs: 30_000 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    const stuck = await Promise.all([tenantWith(OIN_2, http.uri('/h1')), tenantWith('00000009000000000003', http.uri('/h2'))]);
    jwks.sync([tenant, ...stuck]);
    await eventually(() => void expect(http.hits('/h1') + http.hits('/h2')).to.equal(2));
    http.publish('/jwks', [key1.jwk, key2.jwk]);
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(http.hits()).to.equal(1, 'no socket beyond the bound');
    expect(logs.lines.some((l) => l['msg'] === 'jwks refetch for an unknown kid skipped: too many fetches open')).to.equal(true);
    // Once the hanging fetches time out there is room, and the skipped refetch did not spend the interval.
    await eventually(() => void expect(statusOf(jwks, OIN_2).lastError).to.be.a('string'), 3_000);
    await eventually(() => void expect(statusOf(jwks, '00000009000000000003').lastError).to.be.a('string'), 3_000);
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(true);
    expect(kids(jwks, tenant)).to.deep.equal(['k1', 'k2']);
  });

  it('lets fetches of sets never fetched and of healthy endpoints go before retries of failing ones', async () => {
    const failing = Array.from({ length: 6 }, (_, i) => `000000090000000003${String(i).padStart(2, '0')}`);
    for (const [i] of failing.entries()) http.route(`/f${i}`, { hang: true });
    const tenants = await Promise.all(failing.map((oin, i) => tenantWith(oin, http.uri(`/f${i}`))));
    http.publish('/jwks', [key1.jwk]);
    const jwks = cache({ timeoutMs: 500, retryMs: 50, slots: 1, slotHoldMs: 10_000 });
    jwks.sync(tenants);
    // Every failing endpoint has been tried once and is now retrying.
    await eventually(() => void expect(failing.every((_, i) => http.hits(`/f${i}`) >= 1)).to.equal(true), 10_000);
    const newcomer = await tenantWith(OIN_1, http.uri());
    const started = Date.now();
    jwks.sync([...tenants, newcomer]);
    await eventually(() => void expect(jwks.keysFor(newcomer)).to.not.equal(undefined), 5_000);
    // One slot, held up to 500 ms by a hanging fetch: the newcomer went next,
    // not after five retries queued before it (2.5 s).
    expect(Date.now() - started).to.be.lessThan(1_500);
  });

  it('fetches a set over plain HTTP to loopback and offers its keys for that tenant', async () => {
    http.publish('/jwks', [key1.jwk, key2.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache();
    expect(jwks.keysFor(tenant)).to.equal(undefined);
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    expect(kids(jwks, tenant)).to.deep.equal(['k1', 'k2']);
    expect(http.hits()).to.equal(1);
    expect(fetches).to.deep.equal([[OIN_1, 'ok']]);
    const token = signWith(key2, { oin: OIN_1 });
    expect(verifyTenantToken(token, jwks.keysFor(tenant)!, POLICY, Date.now()).ok).to.equal(true);
    const status = statusOf(jwks, OIN_1);
    expect(status.lastError).to.equal(null);
    expect(status.keys).to.equal(2);
    expect(status.usable).to.equal(true);
  });

  it('fetches over HTTPS trusting the given CA, and refuses the same endpoint without it', async () => {
    https.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, https.uri());
    const trusting = cache({ ca: tls.cert });
    trusting.sync([tenant]);
    await loaded(trusting, tenant);
    expect(kids(trusting, tenant)).to.deep.equal(['k1']);

    const untrusting = cache();
    untrusting.sync([tenant]);
    await eventually(() => void expect(statusOf(untrusting, OIN_1).lastError).to.match(/cert/i));
    expect(untrusting.keysFor(tenant)).to.equal(undefined);
  });

  it('builds the merged KeySet once per fetch, and anew for a new snapshot of the tenant', async () => {
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache();
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    const first = jwks.keysFor(tenant);
    expect(jwks.keysFor(tenant)).to.equal(first);
    expect(jwks.keysFor(tenant)?.list[0]?.key).to.equal(first?.list[0]?.key);

    const next = await tenantWith(OIN_1, http.uri(), [{ kid: 'static', alg: 'HS256', secret: 's'.repeat(32) }]);
    jwks.sync([next]);
    expect(kids(jwks, next)).to.deep.equal(['static', 'k1']);
    expect(jwks.keysFor(next)?.list[1]?.key).to.equal(first?.list[0]?.key, 'the fetched KeyObject is reused');
    expect(http.hits()).to.equal(1);
  });

  it('refreshes in the background every TTL without any request asking', async () => {
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ ttlSeconds: 1 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    http.publish('/jwks', [key1.jwk, key3.jwk]);
    await eventually(() => void expect(kids(jwks, tenant)).to.deep.equal(['k1', 'k3']), 4_000);
    expect(http.hits()).to.equal(2);
    expect(logs.lines.filter((l) => l['msg'] === 'jwks set loaded').map((l) => l['kids'])).to.deep.equal([['k1'], ['k1', 'k3']]);
  });

  it('stops offering a key removed from the set after the refresh', async () => {
    http.publish('/jwks', [key1.jwk, key2.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ ttlSeconds: 1 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    const token = signWith(key2, { oin: OIN_1 });
    expect(verifyTenantToken(token, jwks.keysFor(tenant)!, POLICY, Date.now()).ok).to.equal(true);
    http.publish('/jwks', [key1.jwk]);
    await eventually(() => void expect(kids(jwks, tenant)).to.deep.equal(['k1']), 4_000);
    expect(verifyTenantToken(token, jwks.keysFor(tenant)!, POLICY, Date.now())).to.deep.equal({
      ok: false,
      reason: 'token_unknown_kid',
    });
  });

  it('on an unknown kid, 100 concurrent callers share exactly one fetch; a second burst within the interval fetches nothing', async () => {
    clock = Date.now();
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ refetchIntervalMs: 30_000 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    expect(http.hits()).to.equal(1);

    http.publish('/jwks', [key1.jwk, key2.jwk]);
    const burst = await Promise.all(Array.from({ length: 100 }, () => jwks.refreshOnUnknownKid(tenant)));
    expect(http.hits()).to.equal(2);
    expect(burst.every((changed) => changed === true)).to.equal(true);
    expect(kids(jwks, tenant)).to.deep.equal(['k1', 'k2']);

    clock += 29_000;
    http.publish('/jwks', [key1.jwk, key2.jwk, key3.jwk]);
    const second = await Promise.all(Array.from({ length: 100 }, () => jwks.refreshOnUnknownKid(tenant)));
    expect(second.every((changed) => changed === false)).to.equal(true);
    expect(http.hits()).to.equal(2);

    clock += 1_000;
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(true);
    expect(http.hits()).to.equal(3);
    expect(kids(jwks, tenant)).to.deep.equal(['k1', 'k2', 'k3']);
  });

  it('resolves false when the refetched set did not change', async () => {
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache();
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    const before = jwks.keysFor(tenant);
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(http.hits()).to.equal(2);
    expect(jwks.keysFor(tenant)).to.equal(before);
  });

  it('rate-limits unknown-kid refetches per tenant, not globally', async () => {
    http.publish('/one', [key1.jwk]);
    http.publish('/two', [key1.jwk]);
    const one = await tenantWith(OIN_1, http.uri('/one'));
    const two = await tenantWith(OIN_2, http.uri('/two'));
    const jwks = cache();
    jwks.sync([one, two]);
    await loaded(jwks, one);
    await loaded(jwks, two);
    await jwks.refreshOnUnknownKid(one);
    await jwks.refreshOnUnknownKid(one);
    await jwks.refreshOnUnknownKid(two);
    expect([http.hits('/one'), http.hits('/two')]).to.deep.equal([2, 2]);
  });

  it('keeps serving the last good set while the endpoint is down, up to TTL + max stale, then none', async () => {
    clock = Date.now();
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ ttlSeconds: 60, maxStaleSeconds: 600, timeoutMs: 1_000, refetchIntervalMs: 0 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    await http.close();

    clock += 60_000 + 1_000 + 599_000;
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(kids(jwks, tenant)).to.deep.equal(['k1']);
    const status = statusOf(jwks, OIN_1);
    expect(status.lastError).to.match(/ECONNREFUSED/);
    expect(status.ageSeconds).to.equal(660);
    const stale = logs.lines.find((l) => l['msg'] === 'jwks set is stale; the last good set stays in use');
    expect(stale).to.include({ oin: OIN_1, jwksUri: http.uri(), ageSeconds: 660, outcome: 'error' });
    expect(stale?.['level']).to.equal(40);
    expect(fetches).to.deep.equal([
      [OIN_1, 'ok'],
      [OIN_1, 'error'],
    ]);

    clock += 1_001;
    expect(jwks.keysFor(tenant)).to.equal(undefined);
    expect(statusOf(jwks, OIN_1).usable).to.equal(false);
  });

  it('offers no keys for a tenant whose set was never fetched, and logs it as unavailable', async () => {
    http.route('/jwks', { status: 503, body: 'down' });
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache();
    jwks.sync([tenant]);
    await eventually(() => void expect(statusOf(jwks, OIN_1).lastError).to.equal('status 503'));
    expect(jwks.keysFor(tenant)).to.equal(undefined);
    expect(statusOf(jwks, OIN_1)).to.include({ fetchedAt: undefined, ageSeconds: null, usable: false, keys: 0 });
    expect(logs.lines.find((l) => l['msg'] === 'jwks set unavailable; the tenant is answered 503')).to.include({ oin: OIN_1 });
    // a tenant the cache was never told about has no keys either
    expect(jwks.keysFor(await tenantWith(OIN_2, http.uri()))).to.equal(undefined);
  });

  it('answers a tenant without jwksUri with its static keys, untouched', async () => {
    const tenant = await tenantWith(OIN_1, undefined, [{ kid: 's', alg: 'HS256', secret: 's'.repeat(32) }]);
    const jwks = cache();
    jwks.sync([tenant]);
    expect(jwks.keysFor(tenant)).to.equal(tenant.keys);
    expect(jwks.status()).to.deep.equal([]);
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
  });

  it('refuses an oversize set (declared or streamed) and keeps the last good one', async () => {
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ maxBytes: 4096, refetchIntervalMs: 0 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);

    const big = JSON.stringify({ keys: [key1.jwk, key2.jwk], padding: 'x'.repeat(8192) });
    http.route('/jwks', { body: big });
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(statusOf(jwks, OIN_1).lastError).to.match(/at most 4096/);

    http.route('/jwks', { body: big, chunked: true });
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(statusOf(jwks, OIN_1).lastError).to.match(/over 4096/);

    expect(kids(jwks, tenant)).to.deep.equal(['k1']);
    expect(fetches.map(([, outcome]) => outcome)).to.deep.equal(['ok', 'refused', 'refused']);
  });

  it('refuses malformed JSON and a set with duplicate kids, keeping the last good one', async () => {
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ refetchIntervalMs: 0 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    const before = jwks.keysFor(tenant);

    http.route('/jwks', { body: '{"keys": [' });
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(statusOf(jwks, OIN_1).lastError).to.match(/not valid JSON/);

    http.publish('/jwks', [key2.jwk, { ...key3.jwk, kid: 'k2' }]);
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(statusOf(jwks, OIN_1).lastError).to.match(/more than once/);

    expect(jwks.keysFor(tenant)).to.equal(before);
    expect(fetches.map(([, outcome]) => outcome)).to.deep.equal(['ok', 'refused', 'refused']);
  });

  it('refuses a fetched set that reuses a static kid of the tenant, keeping the last good one', async () => {
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri(), [{ kid: 'k2', alg: 'HS256', secret: 's'.repeat(32) }]);
    const jwks = cache({ refetchIntervalMs: 0 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    expect(kids(jwks, tenant)).to.deep.equal(['k2', 'k1']);

    http.publish('/jwks', [key1.jwk, key2.jwk]);
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    expect(statusOf(jwks, OIN_1).lastError).to.match(/"k2", already a static key/);
    expect(kids(jwks, tenant)).to.deep.equal(['k2', 'k1']);
    expect(jwks.keysFor(tenant)?.byKid.get('k2')?.alg).to.equal('HS256');
  });

  it('refuses a redirect without following it', async () => {
    http.publish('/jwks', [key1.jwk]);
    http.route('/moved', { status: 302, headers: { location: http.uri('/jwks') } });
    const tenant = await tenantWith(OIN_1, http.uri('/moved'));
    const jwks = cache();
    jwks.sync([tenant]);
    await eventually(() => void expect(statusOf(jwks, OIN_1).lastError).to.equal('redirect (status 302) refused'));
    expect(http.hits('/jwks')).to.equal(0);
    expect(jwks.keysFor(tenant)).to.equal(undefined);
  });

  it('refuses plain HTTP to a host that is not loopback, without connecting', async () => {
    const loopback = await tenantWith(OIN_1, http.uri());
    const tenant: Tenant = { ...loopback, jwksUri: 'http://192.0.2.10/jwks' };
    const jwks = cache();
    jwks.sync([tenant]);
    await eventually(() => void expect(statusOf(jwks, OIN_1).lastError).to.match(/must use https/));
    expect(fetches).to.deep.equal([[OIN_1, 'error']]);
  });

  it('gives up on an endpoint that does not answer within the timeout', async () => {
    http.route('/jwks', { hang: true });
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ timeoutMs: 300 });
    const started = Date.now();
    jwks.sync([tenant]);
    await eventually(() => void expect(statusOf(jwks, OIN_1).lastError).to.be.a('string'));
    expect(Date.now() - started).to.be.lessThan(2_000);
    expect(statusOf(jwks, OIN_1).lastError).to.match(/300 ms|timeout/i);
    expect(jwks.keysFor(tenant)).to.equal(undefined);
  });

  it('on sync keeps an entry whose URI did not change, fetches a changed URI, and drops removed tenants', async () => {
    http.publish('/a', [key1.jwk]);
    http.publish('/b', [key2.jwk]);
    const first = await tenantWith(OIN_1, http.uri('/a'));
    const other = await tenantWith(OIN_2, http.uri('/a'));
    const jwks = cache();
    jwks.sync([first, other]);
    await loaded(jwks, first);
    await loaded(jwks, other);
    expect(http.hits('/a')).to.equal(2);

    const renamed = { ...first, name: 'renamed' };
    jwks.sync([renamed, other]);
    expect(kids(jwks, renamed)).to.deep.equal(['k1']);
    expect(http.hits('/a')).to.equal(2);

    const moved = await tenantWith(OIN_1, http.uri('/b'));
    jwks.sync([moved]);
    expect(jwks.keysFor(moved)).to.equal(undefined, 'the new URI has not been fetched yet');
    expect(jwks.keysFor(first)).to.equal(undefined, 'the old URI no longer counts');
    await loaded(jwks, moved);
    expect(kids(jwks, moved)).to.deep.equal(['k2']);
    expect(jwks.status().map((s) => s.oin)).to.deep.equal([OIN_1]);
    expect(jwks.keysFor(other)).to.equal(undefined);
  });

  it('gives two tenants publishing the same set separate fetches and separate KeyObjects', async () => {
    http.publish('/jwks', [key1.jwk]);
    const one = await tenantWith(OIN_1, http.uri());
    const two = await tenantWith(OIN_2, http.uri());
    const jwks = cache();
    jwks.sync([one, two]);
    await loaded(jwks, one);
    await loaded(jwks, two);
    expect(http.hits()).to.equal(2);
    expect(jwks.keysFor(one)).to.not.equal(jwks.keysFor(two));
    expect(jwks.keysFor(one)?.byKid.get('k1')?.key).to.not.equal(jwks.keysFor(two)?.byKid.get('k1')?.key);
  });

  it('offers nothing and fetches nothing more after close', async () => {
    http.publish('/jwks', [key1.jwk]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache();
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    await jwks.close();
    expect(jwks.keysFor(tenant)).to.equal(undefined);
    expect(await jwks.refreshOnUnknownKid(tenant)).to.equal(false);
    jwks.sync([tenant]);
    expect(http.hits()).to.equal(1);
  });

  it('never logs key material', async () => {
    http.publish('/jwks', [key1.jwk, { ...key2.jwk, use: 'enc' }]);
    const tenant = await tenantWith(OIN_1, http.uri());
    const jwks = cache({ refetchIntervalMs: 0 });
    jwks.sync([tenant]);
    await loaded(jwks, tenant);
    http.publish('/jwks', [key1.jwk, key1.jwk]);
    await jwks.refreshOnUnknownKid(tenant);
    const text = JSON.stringify(logs.lines);
    expect(text).to.contain('k1');
    for (const secretish of [key1.jwk.n as string, key2.jwk.x as string]) {
      expect(text).to.not.contain(secretish.slice(0, 16));
    }
  });
});
