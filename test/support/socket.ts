/**
 * Test harness: raw TCP clients for HTTP the way attackers send it (exact
 * bytes, trickled bytes, many small chunks), reading what comes back.
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  /** Everything the server sent, as latin1 text. */
  readonly text: string;
  /** ms from connecting until the server closed the connection (or the timeout). */
  readonly ms: number;
  /** True when the server closed the connection before the timeout. */
  readonly closed: boolean;
}

function hostPort(baseUrl: string): { host: string; port: number } {
  const url = new URL(baseUrl);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) };
}

/**
 * Opens a connection, lets `drive` write to it, and collects everything read
 * until the server closes it or `timeoutMs` passes.
 */
export function rawSession(baseUrl: string, drive: (socket: Socket) => void, timeoutMs = 3_000): Promise<RawAnswer> {
  const { host, port } = hostPort(baseUrl);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), ms: Date.now() - started, closed });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => drive(socket));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after the answer still counts as the server closing.
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') done(true);
      else if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(error);
      }
    });
    socket.on('close', () => done(true));
  });
}

/** Writes `bytes` at once and collects the answer. */
export function rawExchange(baseUrl: string, bytes: string | Buffer, timeoutMs = 3_000): Promise<RawAnswer> {
  return rawSession(baseUrl, (socket) => socket.write(bytes), timeoutMs);
}

/** Writes `head` at once, then one byte of `rest` every `everyMs` ms while the socket is open. */
export function trickle(baseUrl: string, head: string, rest: string, everyMs: number, timeoutMs: number): Promise<RawAnswer> {
  return rawSession(
    baseUrl,
    (socket) => {
      if (head !== '') socket.write(head);
      let offset = 0;
      const interval = setInterval(() => {
        if (socket.destroyed || offset >= rest.length) {
          clearInterval(interval);
          return;
        }
        socket.write(rest.charAt(offset));
        offset += 1;
      }, everyMs);
      socket.once('close', () => clearInterval(interval));
    },
    timeoutMs,
  );
}

/** A chunked body of `bytes` bytes of `fill`, one HTTP chunk per `chunkBytes` bytes, with its terminating chunk. */
export function chunkedBody(bytes: number, chunkBytes: number, fill = 'a'): string {
  const full = Math.floor(bytes / chunkBytes);
  const rest = bytes - full * chunkBytes;
  const piece = `${chunkBytes.toString(16)}\r\n${fill.repeat(chunkBytes)}\r\n`;
  const tail = rest > 0 ? `${rest.toString(16)}\r\n${fill.repeat(rest)}\r\n` : '';
  return `${piece.repeat(full)}${tail}0\r\n\r\n`;
}

/** The status code of the first response in a raw answer, or 0 when there is none. */
export function statusOf(answer: RawAnswer): number {
  const match = /^HTTP\/1\.[01] (\d{3}) /.exec(answer.text);
  return match ? Number(match[1]) : 0;
}

/** The header block and the JSON body of the first response in a raw answer. */
export function parseRaw(answer: RawAnswer): { status: number; headers: Map<string, string>; body: Record<string, unknown> | undefined } {
  const end = answer.text.indexOf('\r\n\r\n');
  const head = end === -1 ? answer.text : answer.text.slice(0, end);
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body: Record<string, unknown> | undefined;
  if (end !== -1) {
    const rest = answer.text.slice(end + 4);
    const length = Number(headers.get('content-length') ?? rest.length);
    try {
      body = JSON.parse(rest.slice(0, length)) as Record<string, unknown>;
    } catch {
      body = undefined;
    }
  }
  return { status: statusOf(answer), headers, body };
}
