import type { IncomingMessage } from 'node:http';
import { Refusal } from './refusal.ts';
import { Roster, type Rostered } from './roster.ts';

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
/** The answer for a request without a body, shared. */
const NO_BODY: Promise<undefined> = Promise.resolve(undefined);

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

/**
 * The Content-Type values nearly every client sends, exactly as sent: each
 * passes the parse below, so they skip it (a split, trims and two regular
 * expressions per request otherwise).
 */
const PLAIN_JSON: ReadonlySet<string> = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

/** Why the body's media type or encoding is refused (415), or undefined when it is JSON in UTF-8, unencoded. */
function mediaTypeRefusal(request: IncomingMessage): Refusal | undefined {
  const encoding = request.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return new Refusal(415, 'content_encoding');
  const contentType = request.headers['content-type'] ?? '';
  if (PLAIN_JSON.has(contentType)) return undefined;
  const [type = '', ...parameters] = contentType.split(';');
  if (!JSON_MEDIA_TYPE.test(type.trim().toLowerCase())) return new Refusal(415, 'media_type');
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=');
    if (name.trim().toLowerCase() === 'charset' && !UTF8_CHARSET.test(value.trim())) return new Refusal(415, 'charset');
  }
  return undefined;
}

/** The declared Content-Length, or undefined for a chunked body (Node's parser has validated the digits). */
export function declaredLength(request: IncomingMessage): number | undefined {
  if (request.headers['transfer-encoding'] !== undefined) return undefined;
  const text = request.headers['content-length'];
  return text === undefined ? undefined : Number(text);
}

/**
 * Body deadlines are enforced by one sweep per deadline length instead of a
 * timer per request: a timer's insertion, removal and clock reads cost
 * about 3 % of a forward-auth request (profiled), a roster entry next to
 * nothing. Like Node's own header and request timeouts, a body is then cut
 * between its deadline and one step later; the step is a quarter of the
 * deadline, at most 1 s. The interval runs only while bodies are being read
 * and never holds the process open.
 */
class DeadlineSweep {
  readonly #reading = new Roster<BodyReader>();
  readonly #stepMs: number;
  /** Whole steps in a deadline, rounded up: a body is never cut early. */
  readonly #steps: number;
  #tick = 0;
  #interval: NodeJS.Timeout | undefined;

  constructor(deadlineMs: number) {
    this.#stepMs = Math.max(1, Math.min(1_000, Math.floor(deadlineMs / 4)));
    this.#steps = Math.ceil(deadlineMs / this.#stepMs);
  }

  /** The tick at which a body starting now is past its deadline. */
  add(reader: BodyReader): number {
    this.#reading.add(reader);
    if (this.#interval === undefined) {
      this.#interval = setInterval(() => this.#sweep(), this.#stepMs);
      this.#interval.unref();
    }
    // The next tick comes at most one step from now, so count from it.
    return this.#tick + 1 + this.#steps;
  }

  delete(reader: BodyReader): void {
    this.#reading.delete(reader);
  }

  #sweep(): void {
    const tick = ++this.#tick;
    for (const reader of this.#reading) {
      if (reader.expiresAt <= tick) reader.fail(408, 'body_timeout');
    }
    if (this.#reading.size === 0) {
      clearInterval(this.#interval);
      this.#interval = undefined;
    }
  }
}

/** One sweep per deadline length in use (one per configured gate, in practice). */
const sweeps = new Map<number, DeadlineSweep>();

function sweepFor(deadlineMs: number): DeadlineSweep {
  let sweep = sweeps.get(deadlineMs);
  if (sweep === undefined) {
    sweep = new DeadlineSweep(deadlineMs);
    sweeps.set(deadlineMs, sweep);
  }
  return sweep;
}

/** Where a request being read keeps its reader, for the module-level listeners below. */
const READER = Symbol('oingate.bodyReader');
type ReadingRequest = IncomingMessage & { [READER]?: BodyReader | undefined };

function onData(this: IncomingMessage, piece: Buffer): void {
  (this as ReadingRequest)[READER]?.piece(piece);
}
function onEnd(this: IncomingMessage): void {
  (this as ReadingRequest)[READER]?.end();
}
function onAbort(this: IncomingMessage): void {
  (this as ReadingRequest)[READER]?.fail(400, 'body_aborted');
}

/**
 * One body being read. Its listeners are the module functions above, which
 * find the reader on the request (`this` is the emitter), rather than six
 * closures made per request (profiled: they cost more than the copying;
 * under tsx each one is also renamed by a defineProperty call).
 * Every piece is copied into one buffer as it arrives and let go: keeping
 * the pieces (as raw-body does) costs hundreds of bytes per piece, which a
 * body of 1-byte chunks turns into hundreds of megabytes.
 */
class BodyReader implements Rostered<BodyReader> {
  rosterPrev: BodyReader | undefined;
  rosterNext: BodyReader | undefined;
  buffer: Buffer;
  length = 0;
  pieces = 0;
  done = false;
  readonly sweep: DeadlineSweep;
  readonly expiresAt: number;

  constructor(
    readonly request: IncomingMessage,
    readonly declared: number | undefined,
    readonly limit: number,
    deadlineMs: number,
    readonly resolve: (body: Buffer) => void,
    readonly reject: (refusal: Refusal) => void,
  ) {
    this.buffer = Buffer.allocUnsafe(declared ?? Math.min(limit, INITIAL_CHUNKED_BUFFER));
    this.sweep = sweepFor(deadlineMs);
    this.expiresAt = this.sweep.add(this);
    (request as ReadingRequest)[READER] = this;
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onAbort);
    request.on('close', onAbort);
  }

  piece(piece: Buffer): void {
    this.pieces += 1;
    const needed = this.length + piece.length;
    if (needed > this.limit) return this.fail(413, 'body_too_large');
    if (this.pieces > FRAGMENT_GRACE && needed < this.pieces * MIN_AVERAGE_PIECE) return this.fail(400, 'body_fragmented');
    if (needed > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.limit, Math.max(needed, this.buffer.length * 2)));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    piece.copy(this.buffer, this.length);
    this.length = needed;
  }

  end(): void {
    if (this.done) return;
    if (this.declared !== undefined && this.length !== this.declared) return this.fail(400, 'body_aborted');
    this.finish();
    this.resolve(this.length === this.buffer.length ? this.buffer : this.buffer.subarray(0, this.length));
  }

  fail(status: 400 | 408 | 413, reason: string): void {
    if (this.done) return;
    this.finish();
    // Stop parsing whatever else arrives: the refusal closes the connection.
    this.request.pause();
    this.reject(new Refusal(status, reason));
  }

  /**
   * The listeners stay on the request: without the reader each is a no-op,
   * and taking four listeners off again cost more than the rest of a body
   * read (profiled). A request's body is read once.
   */
  finish(): void {
    this.done = true;
    this.sweep.delete(this);
    (this.request as ReadingRequest)[READER] = undefined;
  }
}

/**
 * Reads the request body as the exact bytes the client sent, so the upstream
 * receives them unchanged. Refuses before reading when the declared length is
 * over the limit, stops reading as soon as the limit is passed, and gives up
 * (408) when the body has not arrived within the deadline. Memory per request
 * stays under twice the limit (one buffer, and its successor while it grows).
 */
export function readBody(request: IncomingMessage, options: BodyOptions): Promise<Buffer | undefined> {
  // Not async: that would wrap the reader's promise in one more, with two more turns per request.
  if (!hasBody(request)) return NO_BODY;
  const refusal = mediaTypeRefusal(request);
  if (refusal !== undefined) return Promise.reject(refusal);
  const declared = declaredLength(request);
  if (declared !== undefined && declared > options.limit) return Promise.reject(new Refusal(413, 'body_too_large'));
  return new Promise((resolve, reject) => {
    // It registers itself on the request; its listeners hold it from there.
    new BodyReader(request, declared, options.limit, options.deadlineMs, resolve, reject);
  });
}
