import { expect } from 'chai';
import { networkInterfaces } from 'node:os';
import {
  call,
  eventually,
  OIN_A,
  OIN_B,
  SECRET_A,
  SECRET_B,
  send,
  startGate,
  tokenFor,
  twoTenants,
  type Gate,
  type Response,
  type TenantSpec,
} from '../support/gate.ts';

const READINESS_KEYS = ['lastError', 'lastErrorAt', 'loadedAt', 'ready', 'store', 'tenants', 'version'];
const ADMIN_TOKEN = 'ops-admin-token-5f3c9a7e2b1d';

function get(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return send(baseUrl, { method: 'GET', path, headers });
}

function reload(baseUrl: string, headers: Record<string, string> = {}): Promise<Response> {
  return send(baseUrl, { method: 'POST', path: '/reload', headers });
}

async function readiness(gate: Gate): Promise<Record<string, unknown>> {
  return (await get(gate.adminUrl, '/readyz')).json();
}

function expectReadinessBody(res: Response): Record<string, unknown> {
  expect(res.headers['content-type']).to.match(/^application\/json/);
  const body = res.json();
  expect(Object.keys(body).sort()).to.deep.equal(READINESS_KEYS);
  return body;
}

function expectJsonError(res: Response, status: number, error: string): void {
  expect(res.status).to.equal(status);
  expect(res.headers['content-type']).to.match(/^application\/json/);
  const body = res.json();
  expect(Object.keys(body).sort()).to.deep.equal(['error', 'message', 'requestId']);
  expect(body['error']).to.equal(error);
  expect(body['requestId']).to.equal(res.headers['x-request-id']);
}

/** The value of one exact sample line (`name{labels}` as printed), or undefined. */
async function sample(gate: Gate, series: string): Promise<number | undefined> {
  const text = (await get(gate.adminUrl, '/metrics')).text;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** Every sample of one metric, keyed by its label text ('' when it has none). */
function samples(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match && match[1] === name) found.set(match[2] ?? '', Number(match[3]));
  }
  return found;
}

/** The machine's first non-loopback IPv4 address; the test needs one and says so. */
function externalIPv4(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal && !address.address.startsWith('127.')) return address.address;
    }
  }
  throw new Error(
    'this test needs a non-loopback IPv4 address on this machine (e.g. on eth0) to reach the ops listener ' +
      'from a non-loopback peer, and os.networkInterfaces() lists none',
  );
}

function portOf(url: string): string {
  return new URL(url).port;
}

/** Tenant A limited to 127.0.0.1 only (B keeps all of 127.0.0.0/8). */
function tenantsWithNarrowA(): TenantSpec[] {
  const [a, b] = twoTenants() as [TenantSpec, TenantSpec];
  return [{ ...a, cidrs: ['127.0.0.1/32', '::1/128'] }, b];
}

/** Would remove B and move A off loopback if accepted; refused for the non-canonical CIDR. */
function invalidTenants(): TenantSpec[] {
  const [a] = twoTenants() as [TenantSpec];
  return [{ ...a, cidrs: ['10.0.0.1/8'] }];
}

describe('ops listener: health and readiness', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(null);
  });
  after(() => gate?.close());

  // These tests run in order on one gate: each starts from the state the previous one left.

  it('GET /healthz answers 200 {"status":"ok"} even before any whitelist is loaded', async () => {
    const res = await get(gate.adminUrl, '/healthz');
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^application\/json/);
    expect(res.json()).to.deep.equal({ status: 'ok' });
  });

  it('GET /readyz answers 503 with ready:false before a whitelist exists, and the public listener 503s', async () => {
    const res = await get(gate.adminUrl, '/readyz');
    expect(res.status).to.equal(503);
    const body = expectReadinessBody(res);
    expect(body).to.include({ ready: false, version: null, tenants: 0, loadedAt: null });
    const decision = await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A));
    expect(decision.status).to.equal(503);
    expect(decision.json()['error']).to.equal('unavailable');
  });

  it('GET /readyz answers 200 with ready, store, version, tenants, loadedAt, lastError once a whitelist is written', async () => {
    const written = Date.now();
    await gate.writeWhitelist(twoTenants());
    await eventually(async () => {
      expect((await get(gate.adminUrl, '/readyz')).status).to.equal(200);
    });
    const res = await get(gate.adminUrl, '/readyz');
    expect(res.status).to.equal(200);
    const body = expectReadinessBody(res);
    expect(body['ready']).to.equal(true);
    expect(body['store']).to.equal(`file:${gate.file}`);
    expect(body['version']).to.be.a('string').and.not.equal('');
    expect(body['tenants']).to.equal(2);
    expect(body['lastError']).to.equal(null);
    const loadedAt = Date.parse(body['loadedAt'] as string);
    expect(body['loadedAt']).to.equal(new Date(loadedAt).toISOString());
    expect(loadedAt).to.be.within(written - 1_000, Date.now() + 1_000);
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    expect((await get(gate.adminUrl, '/healthz')).status).to.equal(200);
  });

  it('keeps the version when the same whitelist is rewritten reordered', async () => {
    const before = await readiness(gate);
    const reordered = twoTenants()
      .reverse()
      .map((tenant) => ({ keys: tenant.keys, cidrs: [...tenant.cidrs].reverse(), name: tenant.name, oin: tenant.oin }));
    await gate.writeWhitelist(reordered);
    const res = await reload(gate.adminUrl);
    expect(res.status).to.equal(200);
    expect(expectReadinessBody(res)['version']).to.equal(before['version']);
    expect((await readiness(gate))['version']).to.equal(before['version']);
  });

  it('keeps the version when only whitespace changes', async () => {
    const before = await readiness(gate);
    await gate.writeWhitelist(`\n\n${JSON.stringify({ tenants: twoTenants() }, null, '\t')}\n\n  \r\n`);
    const res = await reload(gate.adminUrl);
    expect(res.status).to.equal(200);
    expect(res.json()['version']).to.equal(before['version']);
    await gate.writeWhitelist(JSON.stringify({ tenants: twoTenants() }));
    expect((await reload(gate.adminUrl)).json()['version']).to.equal(before['version']);
  });

  it('changes the version when a CIDR changes, and enforces the new whitelist', async () => {
    const before = await readiness(gate);
    // 127.0.0.2 is allowed for A under the old whitelist.
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { localAddress: '127.0.0.2' })).status).to.equal(200);
    await gate.writeWhitelist(tenantsWithNarrowA());
    await eventually(async () => {
      const now = await readiness(gate);
      expect(now['version']).to.be.a('string').and.not.equal(before['version']);
      expect(now['lastError']).to.equal(null);
    });
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { localAddress: '127.0.0.2' })).status).to.equal(403);
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    expect((await call(gate.url, { oin: OIN_B }, tokenFor(OIN_B), { localAddress: '127.0.0.2' })).status).to.equal(200);
  });

  it('keeps enforcing the old whitelist and its version when a bad one is written, with lastError set', async () => {
    const before = await readiness(gate);
    await gate.writeWhitelist(invalidTenants());
    await eventually(async () => {
      expect((await readiness(gate))['lastError']).to.be.a('string').and.not.equal('');
    });
    const now = await readiness(gate);
    expect(now).to.include({ ready: true, version: before['version'], tenants: 2, loadedAt: before['loadedAt'] });
    // The old whitelist, not the refused one: B still exists, A still on loopback only as narrowed.
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { localAddress: '127.0.0.2' })).status).to.equal(403);
    expect((await call(gate.url, { oin: OIN_B }, tokenFor(OIN_B))).status).to.equal(200);
  });

  it('clears lastError once a later good whitelist loads', async () => {
    await gate.writeWhitelist(twoTenants());
    await eventually(async () => {
      const now = await readiness(gate);
      expect(now['lastError']).to.equal(null);
      expect(now['tenants']).to.equal(2);
    });
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A), { localAddress: '127.0.0.2' })).status).to.equal(200);
  });

  it('POST /reload from loopback without an admin token answers 200 with the readiness body', async () => {
    const expected = await readiness(gate);
    const res = await reload(gate.adminUrl);
    expect(res.status).to.equal(200);
    const body = expectReadinessBody(res);
    expect(body).to.deep.equal(expected);
    expect(res.headers['x-request-id']).to.be.a('string').and.not.equal('');
  });

  it('POST /reload with a bad file in place answers 422 with the readiness body and lastError, the old version staying', async () => {
    const before = await readiness(gate);
    await gate.writeWhitelist('{"tenants": [');
    // Let the watcher's own reload settle first, so the count below is this reload's alone.
    await eventually(async () => {
      expect((await readiness(gate))['lastError']).to.be.a('string');
    });
    const refusedBefore = await sample(gate, 'oingate_reloads_refused_total{cause="invalid"}');
    const res = await reload(gate.adminUrl);
    expect(res.status).to.equal(422);
    const body = expectReadinessBody(res);
    expect(body['lastError']).to.be.a('string').and.not.equal('');
    expect(body).to.include({ ready: true, version: before['version'], tenants: 2 });
    expect(await sample(gate, 'oingate_reloads_refused_total{cause="invalid"}')).to.equal((refusedBefore as number) + 1);

    await gate.writeWhitelist(twoTenants());
    const good = await reload(gate.adminUrl);
    expect(good.status).to.equal(200);
    expect(good.json()).to.include({ lastError: null, version: before['version'] });
  });
});

describe('ops listener: POST /reload with OINGATE_ADMIN_TOKEN set', () => {
  let gate: Gate;
  let loopbackUrl: string;
  before(async () => {
    gate = await startGate(undefined, { OINGATE_ADMIN_TOKEN: ADMIN_TOKEN, OINGATE_ADMIN_LISTEN: '0.0.0.0:0' });
    loopbackUrl = `http://127.0.0.1:${portOf(gate.adminUrl)}`;
  });
  after(() => gate?.close());

  const wrong: Array<[string, Record<string, string>]> = [
    ['no authorization', {}],
    ['a wrong token', { authorization: 'Bearer ops-admin-token-00000000000000' }],
    ['a shorter token (a prefix of the right one)', { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` }],
    ['a longer token (the right one plus a character)', { authorization: `Bearer ${ADMIN_TOKEN}x` }],
    ['the right token under Basic', { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` }],
    ['the right token without a scheme', { authorization: ADMIN_TOKEN }],
    ['an empty bearer', { authorization: 'Bearer ' }],
  ];
  for (const [title, headers] of wrong) {
    it(`answers 401 with www-authenticate: Bearer for ${title}, even from loopback`, async () => {
      const res = await reload(loopbackUrl, headers);
      expectJsonError(res, 401, 'unauthorized');
      expect(res.headers['www-authenticate']).to.equal('Bearer');
    });
  }

  it('answers 200 with the readiness body for the right token', async () => {
    const res = await reload(loopbackUrl, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).to.equal(200);
    expect(expectReadinessBody(res)).to.include({ ready: true, tenants: 2, lastError: null });
  });

  it('accepts the right token from a non-loopback peer too, and only the right one', async () => {
    const externalUrl = `http://${externalIPv4()}:${portOf(gate.adminUrl)}`;
    expect((await reload(externalUrl, { authorization: `Bearer ${ADMIN_TOKEN}` })).status).to.equal(200);
    const refused = await reload(externalUrl);
    expectJsonError(refused, 401, 'unauthorized');
  });

  it('never shows the HS secrets or the admin token in /readyz, /metrics or the logs', async () => {
    // Produce decisions, reloads and refused reloads so the logs have something to say.
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    expect((await call(gate.url, { oin: OIN_B }, tokenFor(OIN_A))).status).to.equal(401);
    expect((await reload(loopbackUrl, { authorization: `Bearer ${ADMIN_TOKEN}x` })).status).to.equal(401);
    const shortSecret = 'short-SECRET-probe-9x7'; // under 32 bytes: refused, and must not be echoed
    const [a, b] = twoTenants() as [TenantSpec, TenantSpec];
    await gate.writeWhitelist([a, { ...b, keys: [{ kid: 'b1', alg: 'HS256', secret: shortSecret }] }]);
    await eventually(async () => {
      expect((await readiness(gate))['lastError']).to.be.a('string');
    });
    expect((await reload(loopbackUrl, { authorization: `Bearer ${ADMIN_TOKEN}` })).status).to.equal(422);

    const readyz = (await get(gate.adminUrl, '/readyz')).text;
    const metrics = (await get(gate.adminUrl, '/metrics')).text;
    const logs = gate.logs.lines.map((line) => JSON.stringify(line)).join('\n');
    expect(logs).to.include('decision');
    for (const [where, text] of [['/readyz', readyz], ['/metrics', metrics], ['logs', logs]] as const) {
      for (const secret of [SECRET_A, SECRET_B, ADMIN_TOKEN, shortSecret]) {
        expect(text.includes(secret), `${where} must not contain ${secret}`).to.equal(false);
      }
    }
  });
});

describe('ops listener: POST /reload without an admin token', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(undefined, { OINGATE_ADMIN_LISTEN: '0.0.0.0:0' });
  });
  after(() => gate?.close());

  it('refuses a non-loopback peer with 403, and still answers loopback', async () => {
    const address = externalIPv4();
    const port = portOf(gate.adminUrl);
    const refused = await reload(`http://${address}:${port}`);
    expectJsonError(refused, 403, 'forbidden');
    const refusedWithToken = await reload(`http://${address}:${port}`, { authorization: 'Bearer anything-at-all-0123456' });
    expect(refusedWithToken.status).to.equal(403);
    const allowed = await reload(`http://127.0.0.1:${port}`);
    expect(allowed.status).to.equal(200);
    expect(expectReadinessBody(allowed)['ready']).to.equal(true);
  });
});

describe('ops listener: GET /metrics', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate();
  });
  after(() => gate?.close());

  it('serves Prometheus text, with the allowed decision series present at 0 before any decision', async () => {
    const res = await get(gate.adminUrl, '/metrics');
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^text\/plain/);
    expect(res.text).to.match(/^oingate_decisions_total\{outcome="allowed",reason="ok"\} 0$/m);
    expect(res.text).to.match(/^# HELP oingate_decisions_total /m);
    expect(res.text).to.match(/^# TYPE oingate_decisions_total counter$/m);
    expect(res.text).to.match(/^# TYPE oingate_decision_duration_seconds histogram$/m);
  });

  it('counts actual decisions by outcome and reason, and their latency', async () => {
    const before = (await get(gate.adminUrl, '/metrics')).text;
    expect((await call(gate.url, { oin: OIN_A }, tokenFor(OIN_A))).status).to.equal(200);
    expect((await call(gate.url, { oin: OIN_B }, tokenFor(OIN_B))).status).to.equal(200);
    expect((await call(gate.url, { oin: OIN_A }, undefined)).status).to.equal(401);
    const after = (await get(gate.adminUrl, '/metrics')).text;

    const decisionsBefore = samples(before, 'oingate_decisions_total');
    const decisionsAfter = samples(after, 'oingate_decisions_total');
    const allowed = '{outcome="allowed",reason="ok"}';
    expect(after).to.include(`oingate_decisions_total${allowed} `);
    expect((decisionsAfter.get(allowed) ?? 0) - (decisionsBefore.get(allowed) ?? 0)).to.equal(2);
    const refusedGrowth = [...decisionsAfter.entries()]
      .filter(([labels]) => labels.includes('outcome="refused"'))
      .map(([labels, value]) => [labels, value - (decisionsBefore.get(labels) ?? 0)] as const)
      .filter(([, growth]) => growth !== 0);
    expect(refusedGrowth).to.deep.equal([['{outcome="refused",reason="token_missing"}', 1]]);

    expect(after).to.match(/^oingate_decision_duration_seconds_bucket\{le="[^"]+"\} \d+$/m);
    expect(after).to.match(/^oingate_decision_duration_seconds_bucket\{le="\+Inf"\} \d+$/m);
    const count = (text: string) => samples(text, 'oingate_decision_duration_seconds_count').get('') ?? 0;
    expect(count(after) - count(before)).to.equal(3);
  });

  it('reports the loaded whitelist: reloads, version info and tenants', async () => {
    const version = (await readiness(gate))['version'] as string;
    const text = (await get(gate.adminUrl, '/metrics')).text;
    expect(samples(text, 'oingate_reloads_total').get('')).to.equal(1);
    expect(samples(text, 'oingate_reloads_refused_total').get('{cause="invalid"}')).to.equal(0);
    expect(samples(text, 'oingate_reloads_refused_total').get('{cause="unreachable"}')).to.equal(0);
    expect([...samples(text, 'oingate_whitelist_info').entries()]).to.deep.equal([[`{version="${version}"}`, 1]]);
    expect(text).to.include(`oingate_whitelist_info{version="${version}"} 1`);
    expect(samples(text, 'oingate_tenants').get('')).to.equal(2);
  });

  it('counts a refused reload without changing the version info', async () => {
    const version = (await readiness(gate))['version'] as string;
    await gate.writeWhitelist(invalidTenants());
    await eventually(async () => {
      expect(await sample(gate, 'oingate_reloads_refused_total{cause="invalid"}')).to.equal(1);
    });
    expect((await reload(gate.adminUrl)).status).to.equal(422);
    const text = (await get(gate.adminUrl, '/metrics')).text;
    expect(samples(text, 'oingate_reloads_refused_total').get('{cause="invalid"}')).to.equal(2);
    expect(samples(text, 'oingate_reloads_total').get('')).to.equal(1);
    expect([...samples(text, 'oingate_whitelist_info').entries()]).to.deep.equal([[`{version="${version}"}`, 1]]);
    expect(samples(text, 'oingate_tenants').get('')).to.equal(2);
  });

  it('moves the version info and tenant count to a newly loaded whitelist', async () => {
    const [a] = twoTenants() as [TenantSpec];
    await gate.writeWhitelist([a]);
    await eventually(async () => {
      expect((await readiness(gate))['tenants']).to.equal(1);
    });
    const version = (await readiness(gate))['version'] as string;
    const text = (await get(gate.adminUrl, '/metrics')).text;
    expect(samples(text, 'oingate_reloads_total').get('')).to.equal(2);
    expect([...samples(text, 'oingate_whitelist_info').entries()]).to.deep.equal([[`{version="${version}"}`, 1]]);
    expect(samples(text, 'oingate_tenants').get('')).to.equal(1);
  });
});

describe('ops listener: every response', () => {
  let gate: Gate;
  before(async () => {
    gate = await startGate(undefined, { OINGATE_ADMIN_TOKEN: ADMIN_TOKEN });
  });
  after(() => gate?.close());

  it('answers an unknown path with 404 JSON', async () => {
    const res = await get(gate.adminUrl, '/no/such/thing');
    expectJsonError(res, 404, 'not_found');
    const post = await send(gate.adminUrl, { method: 'POST', path: '/readyz/extra' });
    expect(post.status).to.equal(404);
    expect(post.json()['error']).to.equal('not_found');
  });

  it('carries x-request-id: a sane incoming one echoed, else a fresh one', async () => {
    const requests: Array<[string, string, Record<string, string>]> = [
      ['GET', '/healthz', {}],
      ['GET', '/readyz', {}],
      ['GET', '/metrics', {}],
      ['POST', '/reload', {}],
      ['POST', '/reload', { authorization: `Bearer ${ADMIN_TOKEN}` }],
      ['GET', '/nope', {}],
    ];
    const statuses: number[] = [];
    for (const [method, path, headers] of requests) {
      const fresh = await send(gate.adminUrl, { method, path, headers });
      statuses.push(fresh.status);
      expect(fresh.headers['x-request-id'], `${method} ${path}`).to.be.a('string').and.match(/^[\x21-\x7e]{1,128}$/);
      const echoed = await send(gate.adminUrl, { method, path, headers: { ...headers, 'x-request-id': `ops-${method}-${path}` } });
      expect(echoed.headers['x-request-id'], `${method} ${path}`).to.equal(`ops-${method}-${path}`);
      const insane = await send(gate.adminUrl, { method, path, headers: { ...headers, 'x-request-id': 'x'.repeat(129) } });
      expect(insane.headers['x-request-id'], `${method} ${path}`).to.be.a('string').and.not.equal('x'.repeat(129));
    }
    expect(statuses).to.deep.equal([200, 200, 200, 401, 200, 404]);
  });
});
