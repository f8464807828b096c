import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExternalServer } from './external.ts';
import { bodyFor, makeTenant, tokenFor } from './fixtures.ts';
import { findHaproxy, haproxyConfig, startHaproxy } from './haproxy.ts';
import { benchRequest } from './load.ts';
import { checkRefusals } from './refusals.ts';

describe('bench HAProxy anchor', function () {
  const tenant = makeTenant(0, { loopback: true });
  const request = benchRequest(bodyFor(tenant.oin), tokenFor(tenant));
  let dir: string;
  let haproxy: ExternalServer | undefined;

  before(async function () {
    const found = findHaproxy();
    if (!found.path) this.skip();
    dir = await mkdtemp(join(tmpdir(), 'oingate-bench-haproxy-test-'));
    haproxy = await startHaproxy(found.path!, dir, tenant.keys[0]!.secret, tenant.cidrs[0]!);
  });

  after(async () => {
    await haproxy?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('allows the right token and refuses a wrong secret, another OIN in the token and no token', async () => {
    const check = await checkRefusals(haproxy!.url, request, tenant);
    expect(check.line).to.match(/^right token 200, wrong secret 401, other OIN in token 403, no token 401$/);
    expect(check.ok).to.equal(true);
  });

  it('refuses an expired token and an unsigned (alg none) token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = jwt.sign({ oin: tenant.oin, exp: now - 60 }, tenant.keys[0]!.secret, { algorithm: 'HS256' });
    const unsigned = jwt.sign({ oin: tenant.oin, exp: now + 60 }, '', { algorithm: 'none' });
    for (const token of [expired, unsigned]) {
      const response = await fetch(new URL(request.path, haproxy!.url), {
        method: 'POST',
        headers: { ...request.headers, authorization: `Bearer ${token}` },
        body: request.body,
      });
      expect(response.status).to.equal(401);
    }
  });

  it('refuses a body whose OIN differs from the token claim', async () => {
    const response = await fetch(new URL(request.path, haproxy!.url), {
      method: 'POST',
      headers: request.headers,
      body: bodyFor('90000000000000000042'),
    });
    expect(response.status).to.equal(403);
  });

  it('will not write a secret that would need quoting into the configuration', () => {
    expect(() => haproxyConfig(8080, 'has"quote-0123456789', '127.0.0.0/8')).to.throw(/base64url secret/);
  });
});
