/**
 * `oingate serve` stopping on SIGTERM, as a real child process: /readyz
 * turns 503 at once, in-flight requests get OINGATE_DRAIN_SECONDS, one cut
 * at that moment is logged as `shutdown`, and a last line says it stopped.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { call, eventually, OIN_A, send, startGate, twoTenants, tokenFor } from './support/gate.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

interface Child {
  readonly process: ChildProcess;
  readonly stdout: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function serve(env: Record<string, string>): Child {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(base)) if (name.startsWith('OINGATE_')) delete base[name];
  const child = spawn(process.execPath, ['src/bin.js', 'serve'], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { process: child, stdout: () => stdout, exited };
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('oingate serve: stopping on SIGTERM', function () {
  this.timeout(40_000);
  let dir: string;
  let upstream: Server;
  let upstreamUrl: string;
  const held: ServerResponse[] = [];
  const received: string[] = [];
  const children: Child[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oingate-drain-'));
    await writeFile(join(dir, 'whitelist.json'), JSON.stringify({ tenants: twoTenants() }));
    // /slow answers after a second; anything else is held until the test ends.
    upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      received.push(req.url as string);
      if (req.url === '/slow') setTimeout(() => res.end('slow done'), 1_000);
      else held.push(res);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const child of children) child.process.kill('SIGKILL');
    for (const res of held) res.destroy();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('turns /readyz 503, lets a request finish, logs the one cut at the deadline as shutdown, writes a last line, exits 0', async () => {
    const child = serve({
      OINGATE_LISTEN: '127.0.0.1:0',
      OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
      OINGATE_STORE: `file:${join(dir, 'whitelist.json')}`,
      OINGATE_UPSTREAM: upstreamUrl,
      OINGATE_UPSTREAM_TIMEOUT_MS: '30000',
      OINGATE_DRAIN_SECONDS: '3',
      OINGATE_LOG_LEVEL: 'info',
    });
    children.push(child);
    let listening: Record<string, unknown> | undefined;
    await eventually(() => {
      listening = jsonLines(child.stdout()).find((line) => line['msg'] === 'oingate listening');
      expect(listening).to.not.equal(undefined);
    }, 20_000, 50);
    const publicUrl = listening?.['public'] as string;
    const adminUrl = listening?.['admin'] as string;
    await eventually(async () => {
      expect((await send(adminUrl, { method: 'GET', path: '/readyz' })).status).to.equal(200);
    }, 10_000, 50);

    const cut = call(publicUrl, { oin: OIN_A }, tokenFor(OIN_A), { path: '/held', headers: { 'x-request-id': 'held-request' } }).then(
      (res) => res.status,
      () => 'connection cut',
    );
    const slow = call(publicUrl, { oin: OIN_A }, tokenFor(OIN_A), { path: '/slow', headers: { 'x-request-id': 'slow-request' } });
    await eventually(() => {
      expect(received).to.have.members(['/held', '/slow']);
    }, 5_000, 10);

    const signalledAt = Date.now();
    child.process.kill('SIGTERM');
    await eventually(async () => {
      const ready = await send(adminUrl, { method: 'GET', path: '/readyz' });
      expect(ready.status).to.equal(503);
      expect(ready.json()).to.include({ stopping: true, ready: false });
    }, 2_500, 20);
    // New connections are refused during the drain.
    expect(await send(publicUrl, { method: 'GET', path: '/' }).then(() => 'answered', () => 'refused')).to.equal('refused');

    const exit = await child.exited;
    const elapsed = Date.now() - signalledAt;
    expect(exit).to.deep.equal({ code: 0, signal: null });
    expect(elapsed, 'ms from SIGTERM to exit').to.be.within(2_900, 12_000);
    expect(await cut).to.equal('connection cut');
    const slowAnswer = await slow;
    expect(slowAnswer.status, 'the request in flight at SIGTERM finishes within the drain').to.equal(200);
    expect(slowAnswer.text).to.equal('slow done');

    const lines = jsonLines(child.stdout());
    const cutLine = lines.find((line) => line['msg'] === 'decision' && line['requestId'] === 'held-request');
    expect(cutLine).to.include({ outcome: 'allowed', upstreamError: 'shutdown', status: 503, path: '/held' });
    expect(lines.find((line) => line['requestId'] === 'slow-request')).to.include({ outcome: 'allowed', status: 200 });
    const last = lines.at(-1) as Record<string, unknown>;
    expect(last).to.include({ msg: 'oingate stopped', signal: 'SIGTERM', service: 'oingate', level: 30 });
    expect(lines.indexOf(cutLine as Record<string, unknown>)).to.be.below(lines.length - 1);
  });
});

describe('service.close: a request still being decided at the deadline', () => {
  it('is logged with reason shutdown, not as a client that left', async () => {
    const gate = await startGate(undefined, { OINGATE_CLIENT_TIMEOUT_MS: '30000' });
    const url = new URL(gate.url);
    // A body announced and never finished: the gate is still reading it when the drain ends.
    const socket = connect(Number(url.port), url.hostname);
    socket.on('error', () => undefined);
    socket.write(
      `POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nx-oin: ${OIN_A}\r\nx-request-id: half-body\r\n\r\n{"oin":`,
    );
    const closedAt = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    try {
      // Time for the listener to parse the headers and start reading the body (nothing to poll for).
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      await gate.service.close(300);
      expect(Date.now() - started).to.be.within(250, 5_000);
      await closedAt;
      const line = gate.logs.decisions().find((entry) => entry['requestId'] === 'half-body');
      expect(line).to.include({ reason: 'shutdown', upstreamError: 'shutdown', status: 503, oin: OIN_A });
    } finally {
      socket.destroy();
      await gate.close();
    }
  });
});
