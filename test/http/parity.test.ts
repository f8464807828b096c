/**
 * One code path: `oingate serve` (forward-auth mode) and a Koa API that
 * embeds the gate get the same request matrix and must answer alike:
 * status, error code, the headers that matter, and the precise reason in
 * their decision logs.
 */
import { expect } from 'chai';
import {
  call,
  OIN_A,
  OIN_B,
  SECRET_A,
  SECRET_B,
  send,
  signToken,
  startEmbedded,
  startGate,
  tokenFor,
  type EmbeddedApp,
  type Gate,
  type LogCapture,
  type RequestOptions,
  type Response,
  type TenantSpec,
} from '../support/gate.ts';

const OIN_N = '00000001000000000004';
const SECRET_N = 'tenant-n-secret-0123456789abcdefghijkl';

const TENANTS: TenantSpec[] = [
  { oin: OIN_A, cidrs: ['127.0.0.1/32'], keys: [{ kid: 'a1', alg: 'HS256', secret: SECRET_A }] },
  { oin: OIN_B, cidrs: ['127.0.0.1/32'], keys: [{ kid: 'b1', alg: 'HS256', secret: SECRET_B }] },
  { oin: OIN_N, cidrs: ['127.0.0.2/32'], keys: [{ kid: 'n1', alg: 'HS256', secret: SECRET_N }] },
];

const json = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const body = (value: unknown): string => JSON.stringify(value);

/** [title, expected status, expected reason, the request]. */
const MATRIX: Array<[string, number, string, RequestOptions]> = [
  ['allowed, OIN in the body', 200, 'ok', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_A }) }],
  ['allowed, OIN in the header only', 200, 'ok', { method: 'GET', headers: { 'x-oin': OIN_B, ...bearer(tokenFor(OIN_B)) } }],
  ['no token', 401, 'token_missing', { headers: json, body: body({ oin: OIN_A }) }],
  ['a garbage token', 401, 'token_malformed', { headers: { ...json, ...bearer('garbage') }, body: body({ oin: OIN_A }) }],
  ["tenant A's token for tenant B", 401, 'token_unknown_kid', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_B }) }],
  ['a token claiming another tenant', 403, 'claim_mismatch', { headers: { ...json, ...bearer(signToken({ oin: OIN_B })) }, body: body({ oin: OIN_A }) }],
  ['an unknown tenant', 403, 'tenant_unknown', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: body({ oin: '00000001000000000099' }) }],
  ['a client outside the tenant\'s ranges', 403, 'ip_not_whitelisted', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_A }), localAddress: '127.0.0.2' }],
  ['a client outside every tenant\'s ranges', 403, 'ip_no_tenant', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_A }), localAddress: '127.0.0.3' }],
  ['bad JSON', 400, 'body_invalid_json', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: '{"oin":' }],
  ['a duplicate key', 400, 'body_duplicate_key', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: `{"oin":"${OIN_A}","oin":"${OIN_B}"}` }],
  ['a case-folded OIN key', 400, 'oin_key_folded', { headers: { ...json, ...bearer(tokenFor(OIN_A)), 'x-oin': OIN_A }, body: body({ Oin: OIN_B }) }],
  ['header and body disagreeing', 400, 'oin_conflict', { headers: { ...json, ...bearer(tokenFor(OIN_A)), 'x-oin': OIN_B }, body: body({ oin: OIN_A }) }],
  ['a repeated Authorization header', 400, 'authorization_repeated', { headers: { ...json, authorization: [`Bearer ${tokenFor(OIN_A)}`, 'Bearer x.y.z'] }, body: body({ oin: OIN_A }) }],
  ['a repeated Content-Type header', 400, 'content_type_repeated', { headers: { 'content-type': ['application/json', 'text/plain'], ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_A }) }],
  ['a body over the limit', 413, 'body_too_large', { headers: { ...json, ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_A, pad: 'x'.repeat(2000) }) }],
  ['a text/plain body', 415, 'media_type', { headers: { 'content-type': 'text/plain', ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_A }) }],
  ['a gzip body', 415, 'content_encoding', { headers: { ...json, 'content-encoding': 'gzip', ...bearer(tokenFor(OIN_A)) }, body: body({ oin: OIN_A }) }],
];

const RELEVANT_HEADERS = ['content-type', 'www-authenticate', 'connection'];

function summary(res: Response, logs: LogCapture, requestId: string): Record<string, unknown> {
  const line = logs.decisions().find((entry) => entry['requestId'] === requestId);
  const refused = res.status !== 200;
  return {
    status: res.status,
    error: refused ? res.json()['error'] : undefined,
    requestId: res.headers['x-request-id'],
    bodyRequestId: refused ? res.json()['requestId'] : undefined,
    ...Object.fromEntries(RELEVANT_HEADERS.map((name) => [name, refused ? res.headers[name] : undefined])),
    reason: line?.['reason'],
    outcome: line?.['outcome'],
    clientIp: line?.['clientIp'],
  };
}

describe('parity: the service and an embedding Koa API decide identically', () => {
  let service: Gate;
  let api: EmbeddedApp;
  before(async () => {
    service = await startGate(TENANTS, { OINGATE_BODY_LIMIT: '1000' });
    api = await startEmbedded(TENANTS, { bodyLimit: 1000 });
  });
  after(async () => {
    await service?.close();
    await api?.close();
  });

  MATRIX.forEach(([title, status, reason, request], index) => {
    it(`answers ${title} with ${status} (${reason}) in both`, async () => {
      const answers: Array<Record<string, unknown>> = [];
      for (const [url, logs, side] of [[service.url, service.logs, 'service'], [api.url, api.logs, 'api']] as const) {
        const requestId = `parity-${index}-${side}`;
        const res = await send(url, { ...request, headers: { ...request.headers, 'x-request-id': requestId } });
        const got = summary(res, logs, requestId);
        expect(got, side).to.include({ status, reason, requestId });
        answers.push({ ...got, requestId: undefined, bodyRequestId: got['bodyRequestId'] === undefined ? undefined : got['bodyRequestId'] === requestId });
      }
      expect(answers[1], 'the embedding API answers as the service does').to.deep.equal(answers[0]);
    });
  });

  it('refuses the same absolute-form request target in both', async () => {
    for (const url of [service.url, api.url]) {
      const res = await send(url, { method: 'GET', path: `${url}/api`, headers: { 'x-oin': OIN_A, ...bearer(tokenFor(OIN_A)) } });
      expect(res.status).to.equal(400);
      expect(res.json()['error']).to.equal('bad_request');
    }
  });

  it('lets the embedding API see an allowed request only', async () => {
    api.hits.length = 0;
    for (const [, , , request] of MATRIX) await send(api.url, request);
    expect(api.hits).to.have.length(MATRIX.filter(([, status]) => status === 200).length);
    const allowed = await call(api.url, { oin: OIN_A }, tokenFor(OIN_A));
    expect(allowed.status).to.equal(200);
  });
});
