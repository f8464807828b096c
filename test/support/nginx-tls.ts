/**
 * A real nginx terminating mutual TLS in front of oingate's forward-auth
 * mode, configured as the README's recipe: nginx asks for a client
 * certificate, hands it to oingate in `X-Client-Cert` as
 * `$ssl_client_escaped_cert`, and oingate verifies it itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../bench/lib/external.ts';

export const NGINX = '/usr/sbin/nginx';

export function nginxAvailable(): boolean {
  return existsSync(NGINX);
}

export interface NginxTlsOptions {
  readonly gateUrl: string;
  readonly upstreamUrl: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA names nginx sends with its certificate request (the same bundle oingate verifies against). */
  readonly clientCaFile: string;
}

export interface NginxTls {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/** The server block of the README recipe, with this test's paths and ports. */
export function nginxMtlsServer(options: NginxTlsOptions & { readonly port: number }): string {
  const gate = new URL(options.gateUrl);
  const upstream = new URL(options.upstreamUrl);
  return `  server {
    listen 127.0.0.1:${options.port} ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate ${options.certFile};
    ssl_certificate_key ${options.keyFile};
    # Ask for a client certificate but let oingate judge it (bundle, dates, CRLs):
    # a bad one then gets oingate's 403 and a decision log line, not a handshake error.
    ssl_client_certificate ${options.clientCaFile};
    ssl_verify_client optional_no_ca;

    location / {
      auth_request /_oingate;
      auth_request_set $oingate_oin $upstream_http_x_authenticated_oin;
      proxy_set_header X-Authenticated-Oin $oingate_oin;
      # The client must never be able to send these to the API itself.
      proxy_set_header X-Client-Cert "";
      proxy_pass http://${upstream.host};
    }

    location = /_oingate {
      internal;
      proxy_pass http://${gate.host};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # Replaces any X-Client-Cert the client sent; empty (so not sent) without a certificate.
      proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
    }
  }
`;
}

function config(prefix: string, server: string): string {
  return `daemon off;
master_process on;
worker_processes 1;
${typeof process.getuid === 'function' && process.getuid() === 0 ? 'user root;' : ''}
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
${server}}
`;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts nginx with the recipe on a free loopback port; resolves once it accepts connections. */
export async function startNginxTls(options: NginxTlsOptions): Promise<NginxTls> {
  const prefix = await mkdtemp(join(tmpdir(), 'oingate-nginx-tls-'));
  await mkdir(prefix, { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  await writeFile(conf, config(prefix, nginxMtlsServer({ ...options, port })));
  const args = ['-e', join(prefix, 'error.log'), '-p', prefix, '-c', conf];
  const test = spawnSync(NGINX, ['-t', '-q', ...args], { encoding: 'utf8' });
  if (test.status !== 0) throw new Error(`nginx -t failed: ${(test.stderr || test.stdout).trim()}`);
  const child = spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(prefix, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not start: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `https://127.0.0.1:${port}`, port, process: child, stop };
}
