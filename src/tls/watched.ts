import { fileIdentity } from './files.ts';

export interface WatchedOptions<T> {
  /** The files the material is made of. */
  readonly files: readonly string[];
  /** Reads and checks the files; throws (naming the file) to refuse them. */
  readonly load: () => Promise<T>;
  /** How often the files are checked for a change (default 500 ms). */
  readonly pollMs?: number;
  /** Puts new material in use; throwing refuses it, and the old material stays. */
  readonly apply?: (next: T, previous: T) => void;
  /** A refused load. */
  readonly onError?: (error: Error) => void;
}

/**
 * Material made of files (a server pair, a CA bundle with its CRLs), kept
 * live: the files are polled with one stat each per `pollMs`, and re-read
 * only when one of them changed. New material that does not load is refused
 * and the last good one stays, with the error kept until a later load
 * succeeds. Polling rather than fs.watch: it sees atomic renames, symlink
 * swaps and network filesystems alike, at the cost of a few stats a second.
 */
export class WatchedMaterial<T> {
  readonly #options: WatchedOptions<T>;
  #current: T;
  #seen: string;
  #lastError: string | null = null;
  #running: Promise<boolean> = Promise.resolve(true);
  #timer: NodeJS.Timeout | undefined;

  private constructor(options: WatchedOptions<T>, current: T, seen: string) {
    this.#options = options;
    this.#current = current;
    this.#seen = seen;
  }

  /** Loads the material (a refusal rejects, naming the file) and starts watching it. */
  static async open<T>(options: WatchedOptions<T>): Promise<WatchedMaterial<T>> {
    const seen = await identities(options.files);
    const material = new WatchedMaterial(options, await options.load(), seen);
    material.#timer = setInterval(() => void material.#reload(false), options.pollMs ?? 500);
    material.#timer.unref();
    return material;
  }

  get current(): T {
    return this.#current;
  }

  /** The error of the last refused load, null once a later one succeeded. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** Re-reads the files now, changed or not; false when they were refused. */
  reload(): Promise<boolean> {
    return this.#reload(true);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  /** One load at a time: a slow read must not interleave with the next poll. */
  #reload(force: boolean): Promise<boolean> {
    const next = () => this.#reloadNow(force);
    this.#running = this.#running.then(next, next);
    return this.#running;
  }

  async #reloadNow(force: boolean): Promise<boolean> {
    const seen = await identities(this.#options.files);
    if (!force && seen === this.#seen) return this.#lastError === null;
    // Remembered even when refused: a bad file is retried once it changes again, not on every poll.
    this.#seen = seen;
    try {
      const next = await this.#options.load();
      this.#options.apply?.(next, this.#current);
      this.#current = next;
      this.#lastError = null;
      return true;
    } catch (error) {
      this.#lastError = (error as Error).message;
      this.#options.onError?.(error as Error);
      return false;
    }
  }
}

async function identities(files: readonly string[]): Promise<string> {
  return (await Promise.all(files.map(fileIdentity))).join('|');
}
