/**
 * Mutual-TLS bench (contract §9): the same client, the same client
 * certificate and the same certificate tenant against
 *   - oingate terminating mTLS itself (OINGATE_TLS_*, forward-auth mode);
 *   - nginx terminating the same mTLS in front of oingate forward-auth (the
 *     README recipe: $ssl_client_escaped_cert, oingate verifies);
 *   - nginx terminating the same mTLS alone (ssl_verify_client on with the
 *     CRL, `return 200`): what the TLS itself costs in C, as the anchor.
 * Two loads each: handshake-heavy (a new connection, so a full handshake,
 * per request) and keep-alive. Reports; never fails on a figure.
 *
 *   npx tsx test/bench/mtls.ts              # 5 s per round, 3 rounds
 *   BENCH_QUICK=1 npx tsx test/bench/mtls.ts  # a smoke run, figures rough
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeWhitelistFile } from '../support/gate.ts';
import { existsSync } from 'node:fs';
import { NGINX_BINARY as NGINX } from '../support/nginx.ts';
import { startNginxTls, type NginxTls } from '../support/nginx-tls.ts';
import { PKI_OIN_A, testPki, type Pki } from '../support/pki.ts';
import { BenchChild, onBenchExit } from './lib/children.ts';
import { freePort } from './lib/external.ts';
import { fixed, median, percentile, table, thousands } from './lib/stats.ts';

const quick = process.env['BENCH_QUICK'] === '1';
const seconds = Number(process.env['BENCH_SECONDS'] ?? (quick ? 1 : 5));
const rounds = Number(process.env['BENCH_ROUNDS'] ?? (quick ? 1 : 3));
const concurrency = Number(process.env['BENCH_CONNECTIONS'] ?? 8);

interface Round {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
}

/** `concurrency` loops for `seconds`: each request on a new connection, or over keep-alive agents. */
async function load(url: string, pki: Pki, keepAlive: boolean): Promise<Round> {
  const target = new URL(url);
  const latencies: number[] = [];
  let failed = 0;
  const until = performance.now() + seconds * 1000;
  const tls = { ca: pki.root.cert, cert: pki.clients.valid.cert, key: pki.clients.valid.key, servername: 'localhost' };
  const one = (agent: Agent | false) =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const req = request(
        { host: target.hostname, port: target.port, method: 'GET', path: '/api', headers: { 'x-oin': PKI_OIN_A }, agent, ...tls },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) latencies.push(performance.now() - started);
            else failed += 1;
            resolve();
          });
        },
      );
      req.on('error', () => {
        failed += 1;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: 1, ...tls }) : false;
      while (performance.now() < until) await one(agent);
      if (agent) agent.destroy();
    }),
  );
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), failed };
}

function waitForPort(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const attempt = () => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => (Date.now() > deadline ? reject(new Error(`port ${port} never opened`)) : setTimeout(attempt, 50)));
    };
    attempt();
  });
}

/** nginx terminating mTLS and answering 200 itself: its own verification, with the CRL. */
async function startNginxAlone(pki: Pki): Promise<{ url: string; stop(): Promise<void> }> {
  const prefix = await mkdtemp(join(tmpdir(), 'oingate-bench-nginx-'));
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  await writeFile(
    conf,
    `daemon off;\nworker_processes 1;\n${process.getuid?.() === 0 ? 'user root;' : ''}\npid ${prefix}/nginx.pid;\nerror_log ${prefix}/error.log warn;\n` +
      `events { worker_connections 1024; }\nhttp {\n  access_log off;\n  client_body_temp_path ${prefix}/cb;\n  proxy_temp_path ${prefix}/p;\n` +
      `  fastcgi_temp_path ${prefix}/f;\n  uwsgi_temp_path ${prefix}/u;\n  scgi_temp_path ${prefix}/s;\n  keepalive_requests 1000000;\n` +
      `  server {\n    listen 127.0.0.1:${port} ssl;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_certificate ${pki.server.certFile};\n` +
      `    ssl_certificate_key ${pki.server.keyFile};\n    ssl_client_certificate ${pki.caBundleFile};\n    ssl_crl ${pki.crlFile};\n` +
      `    ssl_verify_client on;\n    ssl_verify_depth 3;\n    location / { return 200; }\n  }\n}\n`,
  );
  const child = spawn(NGINX, ['-e', join(prefix, 'error.log'), '-p', prefix, '-c', conf], { stdio: 'ignore' });
  const forget = onBenchExit(() => child.kill('SIGKILL'));
  await waitForPort(port);
  return {
    url: `https://127.0.0.1:${port}`,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGQUIT');
      await exited;
      forget();
      await rm(prefix, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  if (!existsSync(NGINX)) console.log(`nginx not found at ${NGINX}: only oingate is measured`);
  const pki = await testPki();
  const dir = await mkdtemp(join(tmpdir(), 'oingate-bench-mtls-'));
  const file = join(dir, 'whitelist.json');
  await writeWhitelistFile(file, [{ oin: PKI_OIN_A, cidrs: ['127.0.0.0/8'], authentication: 'certificate' } as never]);
  const common = {
    OINGATE_STORE: `file:${file}`,
    OINGATE_LOG_LEVEL: 'warn',
    OINGATE_ADMIN_LISTEN: '127.0.0.1:0',
    OINGATE_TLS_CLIENT_CA: pki.caBundleFile,
    OINGATE_TLS_CRL: pki.crlFile,
  };
  const direct = await BenchChild.start({
    name: 'oingate-mtls',
    script: 'test/bench/servers/oingate.ts',
    env: { ...common, OINGATE_LISTEN: '127.0.0.1:0', OINGATE_TLS_CERT: pki.server.certFile, OINGATE_TLS_KEY: pki.server.keyFile },
  });
  const behind = await BenchChild.start({
    name: 'oingate-behind-nginx',
    script: 'test/bench/servers/oingate.ts',
    env: { ...common, OINGATE_LISTEN: '127.0.0.1:0', OINGATE_CLIENT_CERT_HEADER: 'x-client-cert', OINGATE_TRUSTED_PROXIES: '127.0.0.1/32' },
  });
  const targets: Array<{ name: string; url: string }> = [{ name: 'oingate mTLS (own listener)', url: direct.ready.url }];
  let recipe: NginxTls | undefined;
  let alone: { url: string; stop(): Promise<void> } | undefined;
  let upstream: BenchChild | undefined;
  if (existsSync(NGINX)) {
    // The recipe's API behind nginx, for allowed requests.
    upstream = await BenchChild.start({ name: 'upstream', script: 'test/bench/servers/upstream.ts' });
    recipe = await startNginxTls({
      gateUrl: behind.ready.url,
      upstreamUrl: upstream.ready.url,
      certFile: pki.server.certFile,
      keyFile: pki.server.keyFile,
      clientCaFile: pki.caBundleFile,
    });
    alone = await startNginxAlone(pki);
    targets.push({ name: 'nginx mTLS -> oingate forward-auth', url: recipe.url }, { name: 'nginx mTLS alone (return 200)', url: alone.url });
  }
  try {
    const results = new Map<string, Round[]>();
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        for (const keepAlive of [false, true]) {
          const key = `${target.name}|${keepAlive ? 'keep-alive' : 'new connection per request'}`;
          const result = await load(target.url, pki, keepAlive);
          results.set(key, [...(results.get(key) ?? []), result]);
        }
      }
    }
    const rows = [['target', 'load', 'req/s', 'p50 ms', 'p99 ms', 'failed']];
    for (const [key, list] of results) {
      const [name, mode] = key.split('|') as [string, string];
      rows.push([
        name,
        mode,
        thousands(median(list.map((r) => r.rps))),
        fixed(median(list.map((r) => r.p50)), 2),
        fixed(median(list.map((r) => r.p99)), 2),
        String(list.reduce((sum, r) => sum + r.failed, 0)),
      ]);
    }
    console.log(`mTLS bench: ${concurrency} connections, ${rounds} round(s) of ${seconds} s${quick ? ' (BENCH_QUICK: a smoke run, figures are rough)' : ''}`);
    console.log(table(rows, new Set([2, 3, 4, 5])));
  } finally {
    await recipe?.stop();
    await alone?.stop();
    await direct.stop();
    await behind.stop();
    await upstream?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
