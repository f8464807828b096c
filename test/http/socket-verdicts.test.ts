import { expect } from 'chai';
import type { TLSSocket } from 'node:tls';
import { SOCKET_VERDICT_TTL_MS, SocketVerdicts } from '../../src/http/socket-verdicts.ts';
import { NO_CERTIFICATE, type CertificateFacts } from '../../src/tls/facts.ts';

// Only its identity matters to the memo (a WeakMap key).
const socket = {} as TLSSocket;
const verified: CertificateFacts = { presented: true, verified: true, sha256: 'ab', oin: '00000001000000000001' };

describe('SocketVerdicts', () => {
  it('gives a verdict back under the same material for SOCKET_VERDICT_TTL_MS, and not a moment longer', () => {
    const memo = new SocketVerdicts<number>();
    expect(memo.judged(socket)).to.equal(false);
    expect(memo.keep(socket, 1, 1_000, verified)).to.equal(verified);
    expect(memo.judged(socket)).to.equal(true);
    expect(memo.fresh(socket, 1, 1_000 + SOCKET_VERDICT_TTL_MS - 1)).to.equal(verified);
    expect(memo.fresh(socket, 1, 1_000 + SOCKET_VERDICT_TTL_MS)).to.equal(undefined);
  });

  it('gives nothing under other material (a replaced CA bundle or CRL), and keeps one verdict per socket', () => {
    const memo = new SocketVerdicts<object>();
    const before = {};
    const after = {};
    memo.keep(socket, before, 0, verified);
    expect(memo.fresh(socket, after, 1)).to.equal(undefined);
    memo.keep(socket, after, 2, NO_CERTIFICATE);
    expect(memo.fresh(socket, after, 3)).to.equal(NO_CERTIFICATE);
    expect(memo.fresh(socket, before, 3)).to.equal(undefined);
    expect(memo.fresh({} as TLSSocket, after, 3)).to.equal(undefined);
  });
});
