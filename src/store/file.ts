import { watch, type FSWatcher } from 'chokidar';
import { hash } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { fileDigest, readWhitelistFile } from './read-file.ts';
import { readWhitelistFileInWorker, workerHeapMb, type WorkerValidation } from './read-in-worker.ts';
import type { WhitelistSource } from './source.ts';

export interface FileSourceOptions {
  /** How long events must be quiet before a reload: an editor's write is often several events. */
  readonly debounceMs?: number;
  /** Safety net for filesystems where events are lost: a cheap stat comparison. */
  readonly pollMs?: number;
  /**
   * Files of at least this many bytes are read and parsed in a worker thread
   * (default 1 MiB, some 5,000 tenants), so their parse never pauses requests;
   * smaller ones on the main thread, where a thread would cost more than it saves.
   */
  readonly workerFromBytes?: number;
  /** That thread's heap bound in MiB; default: room for twelve times the file, at least 256. */
  readonly workerHeapMb?: number;
  /**
   * For the first load (loadWithRevision), that thread hands the tenants over
   * in chunks of this many as it parses them (default 4096), and the build
   * starts on the first: on two cores the parse and the build overlap.
   * Nothing is served yet then; a reload reads the whole file first, so that
   * the thread and the build never take turns on the CPU serving requests.
   */
  readonly tenantsPerChunk?: number;
  /**
   * The rules the whitelist is built under (createSource gives the
   * settings'): the first load's reading thread then validates the tenants
   * too, with the build's own code, and the build only makes their key
   * objects and range sets. Under other rules the build validates them itself.
   */
  readonly validation?: WorkerValidation;
}

const WORKER_FROM_BYTES = 1 << 20;
const TENANTS_PER_CHUNK = 4096;

/**
 * A whitelist file, watched. The parent directory is watched rather than the
 * file, because atomic renames and Kubernetes ConfigMap `..data` symlink swaps
 * replace what the path resolves to without touching the file itself. Every
 * event is checked against the resolved file's identity (real path, inode,
 * size, mtime), so only a real change triggers a reload.
 */
export class FileSource implements WhitelistSource {
  readonly description: string;
  readonly #path: string;
  readonly #debounceMs: number;
  readonly #pollMs: number;
  readonly #workerFromBytes: number;
  readonly #workerHeapMb: number | undefined;
  readonly #tenantsPerChunk: number;
  readonly #validation: WorkerValidation | undefined;
  /** Aborted on close: stops a read in a worker. */
  readonly #closing = new AbortController();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #fingerprint = '';
  #changed: (() => void) | undefined;

  constructor(path: string, options: FileSourceOptions = {}) {
    this.#path = resolve(path);
    this.description = `file:${path}`;
    this.#debounceMs = options.debounceMs ?? 100;
    this.#pollMs = options.pollMs ?? 1000;
    this.#workerFromBytes = options.workerFromBytes ?? WORKER_FROM_BYTES;
    this.#workerHeapMb = options.workerHeapMb;
    this.#tenantsPerChunk = options.tenantsPerChunk ?? TENANTS_PER_CHUNK;
    this.#validation = options.validation;
  }

  /** The content's digest, not the file's identity: an explicit reload must not be fooled by a coarse mtime. */
  async revision(): Promise<string | undefined> {
    return fileDigest(this.#path);
  }

  load(): Promise<unknown> {
    return this.#load(undefined);
  }

  /**
   * The first load, and its revision: the digest of exactly the bytes it
   * parsed (a large file's is taken by the reading thread once it has
   * parsed), so it need not read and hash the file first; a large file's
   * tenants are built as that thread parses them (see tenantsPerChunk).
   */
  async loadWithRevision(): Promise<{ document: unknown; revision: Promise<string | undefined> }> {
    let told!: (digest: string | undefined) => void;
    const revision = new Promise<string | undefined>((resolve) => {
      told = resolve;
    });
    return { document: await this.#load(told), revision };
  }

  /** A load; with `revision` (told the digest of what it parsed), the first load, which streams a large file's tenants. */
  async #load(revision: ((digest: string | undefined) => void) | undefined): Promise<unknown> {
    this.#fingerprint = await this.#identity();
    // A file that cannot be stat'ed goes the main thread's way, which words the refusal.
    const size = await stat(this.#path).then((info) => info.size, () => 0);
    if (size < this.#workerFromBytes) {
      return readWhitelistFile(this.#path, revision ? { read: (bytes) => revision(hash('sha256', bytes, 'hex')) } : {});
    }
    return readWhitelistFileInWorker(this.#path, {
      signal: this.#closing.signal,
      maxHeapMb: this.#workerHeapMb ?? workerHeapMb(size),
      // Only a first load (told of its revision) streams and is validated there: a reload builds over the enforced snapshot.
      ...(revision ? { tenantsPerChunk: this.#tenantsPerChunk, revision } : {}),
      ...(revision && this.#validation ? { validation: this.#validation } : {}),
    });
  }

  async watch(changed: () => void): Promise<void> {
    this.#changed = changed;
    const directory = dirname(this.#path);
    const name = basename(this.#path);
    this.#watcher = watch(directory, {
      depth: 0,
      ignoreInitial: true,
      // Kubernetes swaps `..data`; a change anywhere beside the file may change it.
      ignored: (path) => path !== directory && !basename(path).startsWith('..') && basename(path) !== name,
    });
    this.#watcher.on('all', () => this.#schedule());
    this.#watcher.on('error', () => this.#schedule());
    await new Promise<void>((ready) => this.#watcher?.once('ready', () => ready()));
    this.#poll = setInterval(() => void this.#check(), this.#pollMs);
    this.#poll.unref();
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#check(), this.#debounceMs);
  }

  async #check(): Promise<void> {
    const identity = await this.#identity();
    if (identity !== this.#fingerprint) {
      this.#fingerprint = identity;
      this.#changed?.();
    }
  }

  async #identity(): Promise<string> {
    try {
      const real = await realpath(this.#path);
      const info = await stat(real);
      return `${real}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    } catch (error) {
      return `missing:${(error as NodeJS.ErrnoException).code ?? ''}`;
    }
  }

  async close(): Promise<void> {
    this.#closing.abort();
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
    this.#changed = undefined;
    await this.#watcher?.close();
    this.#watcher = undefined;
  }
}
