import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseStrictJsonSliced, type ArrayElements } from '../json/strict-json.ts';
import type { ClassifiedError, RefusalCause } from './source.ts';

// Decoded in pieces, a turn of the event loop between them: 20 MB at once is a pause of tens of ms.
const DECODE_CHUNK_BYTES = 1 << 20;

async function decodeUtf8Sliced(bytes: Buffer): Promise<string> {
  // One decoder per call: a stream decoder keeps state between pieces.
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  if (bytes.length <= DECODE_CHUNK_BYTES) return utf8.decode(bytes);
  const parts: string[] = [];
  for (let at = 0; at < bytes.length; at += DECODE_CHUNK_BYTES) {
    const end = Math.min(at + DECODE_CHUNK_BYTES, bytes.length);
    parts.push(utf8.decode(bytes.subarray(at, end), { stream: end < bytes.length }));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return parts.join('');
}

/** A whitelist file that could not be read (`unreachable`) or is not strict JSON (`invalid`). */
export class WhitelistFileError extends Error implements ClassifiedError {
  readonly code = 'ERR_WHITELIST_FILE';
  constructor(
    message: string,
    readonly refusal: RefusalCause,
  ) {
    super(message);
    this.name = 'WhitelistFileError';
  }
}

/**
 * Reads a whitelist file strictly: invalid UTF-8, duplicate keys or bad JSON
 * refuse it. Its strings are `detached` from the file's text (see
 * StrictJsonOptions) unless the caller's heap ends with the document;
 * `elements` is told of each of a top-level array's elements (the strict
 * parser's option of that name).
 */
export async function readWhitelistFile(
  path: string,
  options: {
    readonly detached?: boolean;
    readonly elements?: ArrayElements | readonly ArrayElements[];
    /** Told of the bytes read, before they are decoded: the content this document is of. */
    readonly read?: (bytes: Buffer) => void;
  } = {},
): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new WhitelistFileError(`cannot read ${path}: ${code}`, 'unreachable');
  }
  options.read?.(bytes);
  let text: string;
  try {
    text = await decodeUtf8Sliced(bytes);
  } catch {
    throw new WhitelistFileError(`${path} is not valid UTF-8`, 'invalid');
  }
  try {
    // Sliced: a whitelist of 100k tenants must not stall requests while it parses.
    return await parseStrictJsonSliced(text, { sliceMs: 10, detached: options.detached ?? true, ...(options.elements ? { elements: options.elements } : {}) });
  } catch (error) {
    throw new WhitelistFileError(`${path}: ${(error as Error).message}`, 'invalid');
  }
}

/** SHA-256 of the file's bytes, read in chunks so a large file never blocks the event loop. */
export async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
