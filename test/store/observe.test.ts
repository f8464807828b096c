/**
 * What a gate tells about its store through /metrics and the log, on the
 * file store: load times, refusals by cause, keys about to expire, the
 * build, and the one line per reload that says what changed.
 */
import { readFile, rm } from 'node:fs/promises';
import { expect } from 'chai';
import { eventually, OIN_A, OIN_B, SECRET_A, SECRET_B, send, startGate, twoTenants, type Gate, type TenantSpec } from '../support/gate.ts';

const DAY = 86_400_000;

async function metrics(gate: Gate): Promise<string> {
  return (await send(gate.adminUrl, { method: 'GET', path: '/metrics' })).text;
}

function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}

function withKeys(keys: Array<Record<string, unknown>>): TenantSpec[] {
  const [a, b] = twoTenants();
  return [{ ...a!, keys }, b!];
}

describe('store observability (file store)', () => {
  let gate: Gate;

  afterEach(async () => {
    await gate?.close();
  });

  it('reports the build version, and the time of the last successful load, which a refused load leaves alone', async () => {
    const before = Math.floor(Date.now() / 1000);
    gate = await startGate();
    const version = (JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    let text = await metrics(gate);
    expect(sample(text, `oingate_build_info{version="${version}"}`)).to.equal(1);
    const loaded = sample(text, 'oingate_last_load_success_timestamp_seconds') as number;
    expect(loaded).to.be.within(before, Math.ceil(Date.now() / 1000));
    await gate.writeWhitelist('{"tenants": [');
    await eventually(async () => {
      expect(sample(await metrics(gate), 'oingate_reloads_refused_total{cause="invalid"}')).to.equal(1);
    });
    text = await metrics(gate);
    expect(sample(text, 'oingate_last_load_success_timestamp_seconds')).to.equal(loaded);
  });

  it('counts refused reloads by cause: bad content is "invalid", a missing file "unreachable"', async () => {
    gate = await startGate();
    await gate.writeWhitelist([{ oin: OIN_A, cidrs: ['0.0.0.0/0'] }]);
    await eventually(async () => {
      expect(sample(await metrics(gate), 'oingate_reloads_refused_total{cause="invalid"}')).to.equal(1);
    });
    await rm(gate.file);
    await eventually(async () => {
      expect(sample(await metrics(gate), 'oingate_reloads_refused_total{cause="unreachable"}')).to.be.at.least(1);
    });
    expect(sample(await metrics(gate), 'oingate_reloads_refused_total{cause="invalid"}')).to.equal(1);
  });

  it('counts enabled keys that expire within 14 days, and follows a reload', async () => {
    const now = Date.now();
    const at = (days: number) => new Date(now + days * DAY).toISOString();
    gate = await startGate(
      withKeys([
        { kid: 'soon', alg: 'HS256', secret: SECRET_A, expiresAt: at(3) },
        { kid: 'soon2', alg: 'HS256', secret: SECRET_A, expiresAt: at(13) },
        { kid: 'later', alg: 'HS256', secret: SECRET_A, expiresAt: at(30) },
        { kid: 'gone', alg: 'HS256', secret: SECRET_A, expiresAt: at(-1) },
        { kid: 'off', alg: 'HS256', secret: SECRET_A, enabled: false, expiresAt: at(3) },
        { kid: 'never', alg: 'HS256', secret: SECRET_A },
      ]),
    );
    expect(sample(await metrics(gate), 'oingate_keys_expiring')).to.equal(2);
    await gate.writeWhitelist(withKeys([{ kid: 'later', alg: 'HS256', secret: SECRET_A, expiresAt: at(30) }]));
    await eventually(async () => {
      expect(sample(await metrics(gate), 'oingate_keys_expiring')).to.equal(0);
    });
  });

  it('has no oingate_store_connected and no storeConnected for a file store', async () => {
    gate = await startGate();
    expect(await metrics(gate)).not.to.include('oingate_store_connected');
    const body = (await send(gate.adminUrl, { method: 'GET', path: '/readyz' })).json();
    expect(body).not.to.have.property('storeConnected');
    expect(body).to.include({ lastErrorAt: null });
  });

  it('logs one line per accepted reload saying per tenant what changed, without a secret', async () => {
    gate = await startGate();
    const [a] = twoTenants();
    const NEW_SECRET = 'observe-test-new-secret-0123456789abcdefgh';
    await gate.writeWhitelist([
      { ...a!, enabled: false, cidrs: ['127.0.0.0/8', '192.0.2.0/24'], keys: [{ kid: 'a2', alg: 'HS256', secret: NEW_SECRET }] },
      { oin: '00000001000000000009', cidrs: ['198.51.100.0/24'] },
    ]);
    const line = await eventually(() => {
      const found = gate.logs.lines.filter((l) => l['msg'] === 'whitelist loaded');
      expect(found).to.have.length(2);
    }).then(() => gate.logs.lines.filter((l) => l['msg'] === 'whitelist loaded')[1]!);
    expect(line['changes']).to.deep.equal({
      tenantsAdded: 1,
      tenantsRemoved: 1,
      tenantsChanged: 1,
      moreTenants: 0,
      tenants: [
        {
          oin: OIN_A,
          change: 'changed',
          enabled: false,
          cidrsAdded: { items: ['192.0.2.0/24'], more: 0 },
          cidrsRemoved: { items: ['::1/128'], more: 0 },
          kidsAdded: { items: ['a2'], more: 0 },
          kidsRemoved: { items: ['a1'], more: 0 },
        },
        { oin: '00000001000000000009', change: 'added', enabled: true, cidrsAdded: { items: ['198.51.100.0/24'], more: 0 } },
        { oin: OIN_B, change: 'removed', enabled: true, cidrsRemoved: { items: ['127.0.0.0/8', '::1/128'], more: 0 }, kidsRemoved: { items: ['b1'], more: 0 } },
      ],
    });
    const all = JSON.stringify(gate.logs.lines);
    for (const secret of [SECRET_A, SECRET_B, NEW_SECRET]) expect(all).not.to.include(secret);
  });
});
