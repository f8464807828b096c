import type { X509Certificate } from 'node:crypto';
import { certificateFromDer, parsePem } from './pem.ts';

/** What a client-certificate header held: nothing, something unusable, or a leaf with what came with it. */
export type HeaderCertificate =
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly problem: HeaderProblem }
  | { readonly kind: 'present'; readonly leaf: X509Certificate; readonly chain: readonly X509Certificate[] };

export type HeaderProblem = 'too_large' | 'too_many_certificates' | 'repeated' | 'malformed' | 'xfcc_malformed' | 'xfcc_no_cert';

export interface HeaderOptions {
  /** Longest header value read (default 32 KiB: a chain of three RSA-4096 certificates, URL-encoded, fits). */
  readonly maxBytes?: number;
  /** Most certificates in one value, leaf included (default 8). */
  readonly maxCertificates?: number;
}

const XFCC_START = /^\s*(?:by|hash|cert|chain|subject|uri|dns)=/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const END = '-----END CERTIFICATE-----';

class Malformed extends Error {
  constructor(readonly problem: HeaderProblem) {
    super(problem);
  }
}

/**
 * Reads a client certificate from the header a TLS-terminating front proxy
 * set, in any of the forms they send:
 * - URL-encoded PEM (nginx `$ssl_client_escaped_cert`), the leaf first;
 * - Envoy's `x-forwarded-client-cert`: `Cert="…"` (and `Chain="…"`), URL-encoded
 *   PEM. Of several elements only the last counts: each proxy appends its own,
 *   so the last is the one our trusted nearest proxy added, and those before
 *   it came from farther away, possibly from the client itself;
 * - base64 DER (Traefik `X-Forwarded-Tls-Client-Cert`), a chain separated by
 *   commas, the leaf first, itself possibly URL-encoded.
 * Anything malformed is `invalid`, never an exception; the work is bounded by
 * `maxBytes` and `maxCertificates`.
 */
export function parseClientCertHeader(value: string | readonly string[] | undefined, options: HeaderOptions = {}): HeaderCertificate {
  if (value === undefined) return { kind: 'absent' };
  if (typeof value !== 'string') {
    if (value.length > 1) return { kind: 'invalid', problem: 'repeated' };
    return parseClientCertHeader(value[0], options);
  }
  if (value.trim() === '') return { kind: 'absent' };
  if (value.length > (options.maxBytes ?? 32_768)) return { kind: 'invalid', problem: 'too_large' };
  const max = options.maxCertificates ?? 8;
  try {
    const certificates = XFCC_START.test(value) ? fromXfcc(value, max) : fromPemOrDer(urlDecoded(value), max);
    const [leaf, ...chain] = certificates;
    if (!leaf) return { kind: 'invalid', problem: 'malformed' };
    return { kind: 'present', leaf, chain };
  } catch (error) {
    if (error instanceof Malformed) return { kind: 'invalid', problem: error.problem };
    throw error;
  }
}

function urlDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new Malformed('malformed');
  }
}

function fromPemOrDer(text: string, max: number): X509Certificate[] {
  return text.includes('-----') ? fromPem(text, max) : fromDerList(text, max);
}

/** Certificates only, back to back: no other block and no text between them. */
function fromPem(text: string, max: number): X509Certificate[] {
  const parts = text.split(END);
  if (parts.length - 1 > max) throw new Malformed('too_many_certificates');
  if (parts.at(-1)?.trim() !== '' || parts.slice(0, -1).some((part) => !part.trimStart().startsWith('-----BEGIN CERTIFICATE-----'))) {
    throw new Malformed('malformed');
  }
  let blocks;
  try {
    blocks = parsePem(text, 'header', ['CERTIFICATE']);
  } catch {
    throw new Malformed('malformed');
  }
  return blocks.map((block) => certificateOrThrow(block.der));
}

function fromDerList(text: string, max: number): X509Certificate[] {
  const pieces = text.split(',').map((piece) => piece.trim());
  if (pieces.length > max) throw new Malformed('too_many_certificates');
  return pieces.map((piece) => {
    const der = Buffer.from(piece, 'base64');
    if (!BASE64.test(piece) || piece.length % 4 !== 0 || der.toString('base64') !== piece) throw new Malformed('malformed');
    return certificateOrThrow(der);
  });
}

function certificateOrThrow(der: Buffer): X509Certificate {
  const certificate = certificateFromDer(der);
  if (!certificate) throw new Malformed('malformed');
  return certificate;
}

/** Envoy's XFCC: elements split by `,`, pairs by `;`, values optionally "quoted" with `\` escapes. */
function fromXfcc(text: string, max: number): X509Certificate[] {
  const elements = splitOutsideQuotes(text, ',');
  const last = elements.at(-1) as string;
  const pairs = new Map<string, string>();
  for (const pair of splitOutsideQuotes(last, ';')) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new Malformed('xfcc_malformed');
    const key = pair.slice(0, equals).trim().toLowerCase();
    if (pairs.has(key)) throw new Malformed('xfcc_malformed');
    pairs.set(key, unquote(pair.slice(equals + 1).trim()));
  }
  const cert = pairs.get('cert');
  if (cert === undefined || cert === '') throw new Malformed('xfcc_no_cert');
  const leaf = fromPem(urlDecoded(cert), 1);
  const chainValue = pairs.get('chain');
  // Envoy's Chain starts with the leaf again; what verifies as intermediates is the rest.
  const chain = chainValue ? fromPem(urlDecoded(chainValue), max) : [];
  const leafCertificate = leaf[0] as X509Certificate;
  return [leafCertificate, ...chain.filter((certificate) => certificate.fingerprint256 !== leafCertificate.fingerprint256)];
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (quoted && char === '\\') index += 1;
    else if (char === '"') quoted = !quoted;
    else if (!quoted && char === separator) {
      parts.push(text.slice(start, index));
      start = index + 1;
    }
  }
  if (quoted) throw new Malformed('xfcc_malformed');
  parts.push(text.slice(start));
  return parts;
}

function unquote(value: string): string {
  if (!value.startsWith('"')) {
    if (value.includes('"')) throw new Malformed('xfcc_malformed');
    return value;
  }
  if (value.length < 2 || !value.endsWith('"')) throw new Malformed('xfcc_malformed');
  return value.slice(1, -1).replace(/\\(.)/g, '$1');
}
