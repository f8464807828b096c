import { X509Certificate } from 'node:crypto';
import { PemError } from './errors.ts';

/** One PEM block: its label (`CERTIFICATE`, `X509 CRL`, ...) and the DER bytes it holds. */
export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

const BEGIN = /^-----BEGIN ([A-Z0-9]+(?: [A-Z0-9]+)*)-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** File bytes as text; a DER or other binary file is refused here rather than read as an empty bundle. */
export function pemText(bytes: Buffer, source: string): string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new PemError(source, 'is not PEM text (not UTF-8; a DER file?)');
  }
  if (text.includes('\u0000')) throw new PemError(source, 'is not PEM text (contains NUL bytes; a DER file?)');
  return text;
}

/**
 * Splits a PEM file into its blocks, strictly: every BEGIN has an END with
 * the same label, the body is canonical base64 without RFC 1421 headers
 * (which mean an encrypted key), and no marker stands outside a block. Text
 * between blocks is allowed (RFC 7468 §2): bundles written by
 * `openssl x509 -text` or by CA download pages carry it. Labels not in
 * `allowed` refuse the file, naming the label but never the content, so a
 * private key pasted into a CA bundle is refused without being echoed.
 */
export function parsePem(text: string, source: string, allowed: readonly string[]): PemBlock[] {
  const blocks: PemBlock[] = [];
  const lines = text.split(/\r?\n/);
  let label: string | undefined;
  let body: string[] = [];
  let startLine = 0;
  for (let index = 0; index < lines.length; index += 1) {
    const line = (lines[index] as string).trimEnd();
    const number = index + 1;
    if (label === undefined) {
      const begin = BEGIN.exec(line);
      if (begin) {
        label = begin[1] as string;
        body = [];
        startLine = number;
        if (!allowed.includes(label)) {
          throw new PemError(source, `block ${blocks.length + 1} (line ${number}) is a ${label}, expected ${allowed.join(' or ')}`);
        }
      } else if (line.includes('-----')) {
        throw new PemError(source, `line ${number}: PEM marker outside a block`);
      }
      continue;
    }
    if (line === `-----END ${label}-----`) {
      blocks.push({ label, der: decodeBody(body, source, blocks.length + 1, label) });
      label = undefined;
    } else if (line.includes('-----')) {
      throw new PemError(source, `line ${number}: ${label} block from line ${startLine} is not closed by its own END line`);
    } else if (line.includes(':')) {
      throw new PemError(source, `line ${number}: ${label} block has PEM headers (an encrypted block is not supported)`);
    } else if (!BASE64_LINE.test(line.trimStart())) {
      throw new PemError(source, `line ${number}: ${label} block holds characters that are not base64`);
    } else {
      body.push(line.trimStart());
    }
  }
  if (label !== undefined) throw new PemError(source, `${label} block from line ${startLine} has no END line`);
  if (blocks.length === 0) throw new PemError(source, `contains no ${allowed.join(' or ')} block`);
  return blocks;
}

function decodeBody(lines: readonly string[], source: string, position: number, label: string): Buffer {
  const base64 = lines.join('');
  const der = Buffer.from(base64, 'base64');
  // Buffer.from ignores what it cannot decode; a round trip catches misplaced padding and truncation.
  if (base64.length === 0 || base64.length % 4 !== 0 || der.toString('base64') !== base64) {
    throw new PemError(source, `block ${position} (${label}) is not valid base64`);
  }
  return der;
}

/** Parses DER as one X.509 certificate, exactly: trailing bytes refuse it. */
export function certificateFromDer(der: Buffer): X509Certificate | undefined {
  try {
    const certificate = new X509Certificate(der);
    return certificate.raw.length === der.length ? certificate : undefined;
  } catch {
    return undefined;
  }
}

/** Every certificate of a PEM bundle; any block that is not one refuses the file. */
export function certificatesFromPem(text: string, source: string): X509Certificate[] {
  return parsePem(text, source, ['CERTIFICATE']).map((block, index) => {
    const certificate = certificateFromDer(block.der);
    if (!certificate) throw new PemError(source, `certificate ${index + 1} is not a valid X.509 certificate`);
    return certificate;
  });
}

/** DER bytes as a PEM block (Node's TLS options take PEM strings). */
export function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
