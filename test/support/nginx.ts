/**
 * Test harness: a real nginx (the machine's /usr/sbin/nginx) in the
 * foreground, with its prefix, temp paths, pid file and logs in a temporary
 * directory, serving the `http { … }` content a test hands it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX_BINARY = '/usr/sbin/nginx';

export interface Nginx {
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** The error log so far (warnings such as "auth request unexpected status" land here). */
  errorLog(): Promise<string>;
  close(): Promise<void>;
}

/** A loopback port that was free a moment ago: bound by the OS, then released. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The whole nginx.conf around `httpContent`; everything writable lives under `dir`. */
export function nginxConf(dir: string, httpContent: string): string {
  return [
    'daemon off;',
    // One process as the current user: no `user` switch, nothing to reap.
    'master_process off;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} info;`,
    'events { worker_connections 128; }',
    'http {',
    `  access_log ${join(dir, 'access.log')};`,
    // As a stock nginx.conf has them (include mime.types): refusals must stay JSON whatever the URI ends in.
    '  types { text/html html; application/json json; }',
    '  default_type application/octet-stream;',
    `  client_body_temp_path ${join(dir, 'client_body')};`,
    `  proxy_temp_path ${join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir, 'scgi')};`,
    httpContent,
    '}',
    '',
  ].join('\n');
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts nginx with `render(port)` as its `http` content; `render` gets the
 * free port nginx must listen on. Resolves once nginx accepts connections;
 * rejects with nginx's own complaint when it does not start.
 */
export async function startNginx(render: (port: number) => string): Promise<Nginx> {
  if (!existsSync(NGINX_BINARY)) {
    throw new Error(`${NGINX_BINARY} is missing: install nginx (apt-get install nginx-light) to run the nginx recipe tests`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'oingate-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, nginxConf(dir, render(port)));
  const errorLog = (): Promise<string> => readFile(join(dir, 'error.log'), 'utf8').catch(() => '');

  const child: ChildProcess = spawn(NGINX_BINARY, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));

  const started = Date.now();
  while (!(await accepting(port))) {
    if (!running || Date.now() - started > 10_000) {
      child.kill('SIGKILL');
      const log = await errorLog();
      await rm(dir, { recursive: true, force: true });
      throw new Error(`nginx did not start: ${output}${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    errorLog,
    async close() {
      if (running) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
