import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FRAGMENT_GRACE, MIN_AVERAGE_PIECE, readBody, type BodyOptions } from '../../src/http/body.ts';
import { Refusal } from '../../src/http/refusal.ts';
import { send } from '../support/gate.ts';
import { chunkedBody, parseRaw, rawExchange, rawSession, trickle } from '../support/socket.ts';

const LIMIT = 256 * 1024;

/** A real server whose handler is readBody alone: 200 {length, sha256}, or the refusal's status and reason. */
async function bodyServer(options: BodyOptions): Promise<{ url: string; reasons: string[]; close(): Promise<void> }> {
  const reasons: string[] = [];
  const server: Server = createServer((req, res) => {
    readBody(req, options).then(
      (body) => {
        const text = JSON.stringify({ length: body?.length ?? null, sha256: body ? createHash('sha256').update(body).digest('hex') : null });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      },
      (error: unknown) => {
        const status = error instanceof Refusal ? error.status : 500;
        reasons.push(error instanceof Refusal ? error.reason : String(error));
        const text = JSON.stringify({ status });
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
        res.end(text);
      },
    );
  });
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    reasons,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function chunkedRequest(body: string): string {
  return `POST /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
}

describe('readBody', () => {
  let server: Awaited<ReturnType<typeof bodyServer>>;
  before(async () => {
    server = await bodyServer({ limit: LIMIT, deadlineMs: 500 });
  });
  after(() => server?.close());

  it('returns the exact bytes of a Content-Length body', async () => {
    const body = Buffer.from(`{"oin":"x","pad":"${'\u00e9'.repeat(1000)}"}`);
    const res = await send(server.url, { headers: { 'content-type': 'application/json' }, body });
    expect(res.status).to.equal(200);
    expect(res.json()).to.deep.equal({ length: body.length, sha256: createHash('sha256').update(body).digest('hex') });
  });

  it('returns the exact bytes of a chunked body of uneven chunks, grown past its first buffer', async () => {
    const parts = ['{"a":"', 'b'.repeat(70_000), '", "c":', '1'.repeat(100), '}'];
    const whole = parts.join('');
    const wire = parts.map((part) => `${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`).join('') + '0\r\n\r\n';
    const answer = parseRaw(await rawExchange(server.url, chunkedRequest(wire)));
    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.equal({ length: whole.length, sha256: createHash('sha256').update(whole).digest('hex') });
  });

  it('accepts a chunked body whose chunks average just over the minimum piece size', async () => {
    const bytes = FRAGMENT_GRACE * 3 * (MIN_AVERAGE_PIECE + 8);
    const answer = parseRaw(await rawExchange(server.url, chunkedRequest(chunkedBody(bytes, MIN_AVERAGE_PIECE + 8))));
    expect(answer.status).to.equal(200);
    expect(answer.body?.['length']).to.equal(bytes);
  });

  it('refuses a declared Content-Length over the limit with 413 before reading it', async () => {
    const answer = await rawExchange(
      server.url,
      `POST /b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${LIMIT + 1}\r\n\r\n{`,
    );
    expect(parseRaw(answer).status).to.equal(413);
    expect(server.reasons.at(-1)).to.equal('body_too_large');
  });

  it('refuses a chunked body with 413 as soon as it passes the limit', async () => {
    const answer = await rawExchange(server.url, chunkedRequest(chunkedBody(LIMIT + 4096, 4096)));
    expect(parseRaw(answer).status).to.equal(413);
    expect(server.reasons.at(-1)).to.equal('body_too_large');
  });

  it('keeps the 415 checks: another media type, a charset other than utf-8, a content-encoding', async () => {
    const cases: Array<Record<string, string>> = [
      { 'content-type': 'text/plain' },
      { 'content-type': 'application/json; charset=latin1' },
      { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    ];
    for (const headers of cases) {
      const res = await send(server.url, { headers, body: '{}' });
      expect(res.status, JSON.stringify(headers)).to.equal(415);
    }
  });

  it('refuses a body of 1-byte chunks with 400 after the first pieces, without reading it all', async () => {
    const answer = await rawExchange(server.url, chunkedRequest(chunkedBody(LIMIT - 1, 1)));
    expect(parseRaw(answer).status).to.equal(400);
    expect(server.reasons.at(-1)).to.equal('body_fragmented');
  });

  it('answers 408 when a Content-Length body trickles in slower than the deadline', async () => {
    const head = `POST /b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`;
    const answer = await trickle(server.url, head, 'x'.repeat(100), 100, 5_000);
    expect(parseRaw(answer).status).to.equal(408);
    expect(server.reasons.at(-1)).to.equal('body_timeout');
    expect(answer.ms, 'cut near the 500 ms deadline').to.be.below(2_000);
    // The sweep cuts between the deadline and a quarter of it later, never before.
    expect(answer.ms, 'not cut before the deadline').to.be.at.least(500);
  });

  it('never cuts a body before its deadline: one complete at some 85 % of it is read', async () => {
    const slow = await bodyServer({ limit: LIMIT, deadlineMs: 1_000 });
    try {
      // 7 bytes 120 ms apart: the last at about 840 ms of the 1,000 ms deadline.
      const head = `POST /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n`;
      const answer = parseRaw(await trickle(slow.url, head, '{"a":1}', 120, 5_000));
      expect(answer.status).to.equal(200);
      expect(answer.body?.['length']).to.equal(7);
    } finally {
      await slow.close();
    }
  });

  it('reads a body that trickles in but is complete before the deadline', async () => {
    // 7 bytes 35 ms apart: done after about 250 ms of the 500 ms deadline.
    const head = `POST /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n`;
    const answer = parseRaw(await trickle(server.url, head, '{"a":1}', 35, 5_000));
    expect(answer.status).to.equal(200);
    expect(answer.body?.['length']).to.equal(7);
  });

  it('answers 408 when a chunked body stops arriving before its last chunk', async () => {
    const answer = await rawSession(server.url, (socket) => socket.write(chunkedRequest('4\r\n{"a"\r\n')), 5_000);
    expect(parseRaw(answer).status).to.equal(408);
    expect(answer.ms).to.be.below(2_000);
  });

  it('gives up on a client that closes mid-body', async () => {
    const before = server.reasons.length;
    await rawSession(server.url, (socket) => {
      socket.write(`POST /b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"`);
      setTimeout(() => socket.destroy(), 50);
    });
    const started = Date.now();
    while (server.reasons.length === before && Date.now() - started < 2_000) await new Promise((r) => setTimeout(r, 20));
    expect(server.reasons.at(-1)).to.equal('body_aborted');
  });
});

describe('readBody under a flood of tiny chunks', () => {
  // The attack: chunked bodies of 1-byte chunks, several at once. raw-body kept
  // every chunk (hundreds of bytes each); here memory must stay flat and a
  // normal request must still be answered promptly meanwhile.
  let server: Awaited<ReturnType<typeof bodyServer>>;
  before(async () => {
    server = await bodyServer({ limit: 1024 * 1024, deadlineMs: 10_000 });
  });
  after(() => server?.close());

  it('keeps resident memory and a concurrent request\'s latency bounded', async function () {
    this.timeout(30_000);
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 10);
    const attack = chunkedRequest(chunkedBody(200 * 1024, 1));
    const attackers = Array.from({ length: 4 }, () => rawExchange(server.url, attack, 15_000));
    const latencies: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const started = Date.now();
      const res = await send(server.url, { headers: { 'content-type': 'application/json' }, body: '{"normal":true}' });
      expect(res.status).to.equal(200);
      latencies.push(Date.now() - started);
    }
    const answers = await Promise.all(attackers);
    clearInterval(sampler);
    const grewMb = (peak - baseline) / (1024 * 1024);
    expect(grewMb, `resident memory grew ${grewMb.toFixed(1)} MB`).to.be.below(64);
    // Generous for a loaded 2-core machine; the old reader took seconds and hundreds of MB here.
    expect(Math.max(...latencies), 'slowest concurrent request (ms)').to.be.below(2_500);
    for (const answer of answers) expect(parseRaw(answer).status).to.equal(400);
  });
});
