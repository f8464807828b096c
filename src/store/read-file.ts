import { readFile } from 'node:fs/promises';
import { parseStrictJsonSliced } from '../json/strict-json.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads a whitelist file strictly: invalid UTF-8, duplicate keys or bad JSON refuse it. */
export async function readWhitelistFile(path: string): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot read ${path}: ${code}`);
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new Error(`${path} is not valid UTF-8`);
  }
  try {
    // Sliced: a whitelist of 100k tenants must not stall requests while it parses.
    return await parseStrictJsonSliced(text, { sliceMs: 10 });
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}
