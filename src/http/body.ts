import type { IncomingMessage } from 'node:http';
import { Refusal } from './refusal.ts';

// application/json or application/<anything>+json; parameters after ';'.
const JSON_MEDIA_TYPE = /^application\/(?:json|[a-z0-9!#$&^_.-]+\+json)$/;
const UTF8_CHARSET = /^"?utf-8"?$/i;

/**
 * A body that arrives in many tiny pieces costs one event, one Buffer and
 * its bookkeeping per piece, whatever their total size: 1-byte chunks make
 * a 1 MB body a million events. After the first FRAGMENT_GRACE pieces their
 * average size must be at least MIN_AVERAGE_PIECE bytes, so that the number
 * of pieces per body is bounded by limit / MIN_AVERAGE_PIECE.
 */
export const FRAGMENT_GRACE = 1024;
export const MIN_AVERAGE_PIECE = 64;
/** First buffer for a body of unknown length; doubled as it fills, never past the limit. */
const INITIAL_CHUNKED_BUFFER = 16 * 1024;

export interface BodyOptions {
  /** Largest body in bytes (413 beyond it). */
  readonly limit: number;
  /** The whole body must arrive within this many ms from the start of reading (408 otherwise). */
  readonly deadlineMs: number;
}

/** Whether the request declares a body (chunked, or a non-zero Content-Length). */
export function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function checkMediaType(request: IncomingMessage): void {
  const encoding = request.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw new Refusal(415, 'content_encoding');
  }
  const [type = '', ...parameters] = (request.headers['content-type'] ?? '').split(';');
  if (!JSON_MEDIA_TYPE.test(type.trim().toLowerCase())) throw new Refusal(415, 'media_type');
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=');
    if (name.trim().toLowerCase() === 'charset' && !UTF8_CHARSET.test(value.trim())) {
      throw new Refusal(415, 'charset');
    }
  }
}

/** The declared Content-Length, or undefined for a chunked body (Node's parser has validated the digits). */
export function declaredLength(request: IncomingMessage): number | undefined {
  if (request.headers['transfer-encoding'] !== undefined) return undefined;
  const text = request.headers['content-length'];
  return text === undefined ? undefined : Number(text);
}

/**
 * Copies every piece into one buffer as it arrives and lets the piece go:
 * keeping the pieces (as raw-body does) costs hundreds of bytes per piece,
 * which a body of 1-byte chunks turns into hundreds of megabytes.
 */
function collect(request: IncomingMessage, declared: number | undefined, options: BodyOptions): Promise<Buffer> {
  const { limit } = options;
  return new Promise((resolve, reject) => {
    let buffer = Buffer.allocUnsafe(declared ?? Math.min(limit, INITIAL_CHUNKED_BUFFER));
    let length = 0;
    let pieces = 0;
    let done = false;

    const cleanup = (): void => {
      done = true;
      clearTimeout(timer);
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('close', onClose);
    };
    const fail = (status: 400 | 408 | 413, reason: string): void => {
      if (done) return;
      cleanup();
      // Stop parsing whatever else arrives: the refusal closes the connection.
      request.pause();
      reject(new Refusal(status, reason));
    };
    const onData = (piece: Buffer): void => {
      pieces += 1;
      const needed = length + piece.length;
      if (needed > limit) return fail(413, 'body_too_large');
      if (pieces > FRAGMENT_GRACE && needed < pieces * MIN_AVERAGE_PIECE) return fail(400, 'body_fragmented');
      if (needed > buffer.length) {
        const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(needed, buffer.length * 2)));
        buffer.copy(grown, 0, 0, length);
        buffer = grown;
      }
      piece.copy(buffer, length);
      length = needed;
    };
    const onEnd = (): void => {
      if (done) return;
      if (declared !== undefined && length !== declared) return fail(400, 'body_aborted');
      cleanup();
      resolve(buffer.subarray(0, length));
    };
    const onError = (): void => fail(400, 'body_aborted');
    const onClose = (): void => fail(400, 'body_aborted');
    const timer = setTimeout(() => fail(408, 'body_timeout'), options.deadlineMs);

    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('close', onClose);
  });
}

/**
 * Reads the request body as the exact bytes the client sent, so the upstream
 * receives them unchanged. Refuses before reading when the declared length is
 * over the limit, stops reading as soon as the limit is passed, and gives up
 * (408) when the body has not arrived within the deadline. Memory per request
 * stays under twice the limit (one buffer, and its successor while it grows).
 */
export async function readBody(request: IncomingMessage, options: BodyOptions): Promise<Buffer | undefined> {
  if (!hasBody(request)) return undefined;
  checkMediaType(request);
  const declared = declaredLength(request);
  if (declared !== undefined && declared > options.limit) throw new Refusal(413, 'body_too_large');
  return collect(request, declared, options);
}
