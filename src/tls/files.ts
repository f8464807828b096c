import { readFile, realpath, stat } from 'node:fs/promises';
import { TlsFileError } from './errors.ts';
import { pemText } from './pem.ts';

/** A PEM file's text; an unreadable or binary file is refused naming the file. */
export async function readPemFile(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new TlsFileError(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return pemText(bytes, file);
}

/**
 * Identity of what a path resolves to now (real path, inode, size, times),
 * so that atomic renames and Kubernetes symlink swaps count as changes.
 */
export async function fileIdentity(file: string): Promise<string> {
  try {
    const real = await realpath(file);
    const info = await stat(real);
    return `${real}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? ''}`;
  }
}
