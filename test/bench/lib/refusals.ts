/**
 * Before a gate is measured, proof that it gates: the bench's right request
 * must get 200, and the same request with a token signed by another secret,
 * a token naming another OIN (signed with the right key), or no token must
 * be refused. A target that fails this is reported, not measured.
 */
import jwt from 'jsonwebtoken';
import { randomBytes } from 'node:crypto';
import { oinFor, type BenchTenant } from './fixtures.ts';
import type { LoadRequest } from './load.ts';

export interface RefusalCheck {
  readonly ok: boolean;
  /** e.g. "right token 200, wrong secret 401, other OIN 403, no token 401". */
  readonly line: string;
}

function signed(tenant: BenchTenant, claims: Record<string, unknown>, secret: string): string {
  const key = tenant.keys[0]!;
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ oin: tenant.oin, sub: 'bench-client', iat: now, exp: now + 600, ...claims }, secret, {
    algorithm: 'HS256',
    keyid: key.kid,
  });
}

export async function checkRefusals(url: string, request: LoadRequest, tenant: BenchTenant): Promise<RefusalCheck> {
  const secret = tenant.keys[0]!.secret;
  const { authorization: _drop, ...withoutToken } = request.headers;
  const cases: Array<{ label: string; headers: Record<string, string>; allowed: boolean }> = [
    { label: 'right token', headers: request.headers, allowed: true },
    {
      label: 'wrong secret',
      headers: { ...withoutToken, authorization: `Bearer ${signed(tenant, {}, randomBytes(24).toString('base64url'))}` },
      allowed: false,
    },
    {
      label: 'other OIN in token',
      headers: { ...withoutToken, authorization: `Bearer ${signed(tenant, { oin: oinFor(999_999) }, secret)}` },
      allowed: false,
    },
    { label: 'no token', headers: withoutToken, allowed: false },
  ];
  const parts: string[] = [];
  let ok = true;
  for (const c of cases) {
    let status: number | string;
    try {
      const response = await fetch(new URL(request.path, url), { method: request.method, headers: c.headers, body: request.body });
      await response.arrayBuffer();
      status = response.status;
    } catch (error) {
      status = `error ${(error as Error).message}`;
    }
    const good = c.allowed ? status === 200 : typeof status === 'number' && status >= 400 && status < 500;
    if (!good) ok = false;
    parts.push(`${c.label} ${status}${good ? '' : ' (WRONG)'}`);
  }
  return { ok, line: parts.join(', ') };
}
