/**
 * Reads a large whitelist file in a worker thread. Parsed on the main
 * thread, a 100,000-tenant document lives on the heap next to the enforced
 * snapshot and the one being built, and collecting it pauses requests for
 * hundreds of milliseconds. The worker reads and parses with the very same
 * code (same checks, same messages), and sends back each tenant's JSON text
 * and document digest, packed: the main thread parses only the tenants that
 * changed, one at a time, and takes the others over by digest.
 *
 * Fails closed: a worker that cannot start, crashes, runs out of its memory
 * bound or is stopped gives a refused load, never a partial document.
 */
import { Worker } from 'node:worker_threads';
import { PackedTenants, type PackedTenantFields } from '../model/packed-tenants.ts';
import { WhitelistFileError } from './read-file.ts';
import type { RefusalCause } from './source.ts';

/** What the worker is asked (workerData). */
export interface WorkerTask {
  readonly path: string;
}

/** What it answers, once. */
export type WorkerAnswer =
  /** `document` with `tenants` null in its place; the tenants packed beside it. */
  | { readonly kind: 'packed'; readonly document: unknown; readonly tenants: PackedTenantFields }
  /** A document without a tenants array, as parsed (the build refuses it). */
  | { readonly kind: 'document'; readonly document: unknown }
  | { readonly kind: 'refused'; readonly message: string; readonly refusal: RefusalCause };

/**
 * The worker's heap bound for a file of `bytes`. The tenants are packed as
 * they are parsed (a 100,000-tenant file of 19 MiB needs some 60 MiB), but a
 * document parsed whole takes about eight times its file; the bound leaves
 * room for that, and a file whose parse needs more (a pathological one) is
 * refused instead of running the whole process out of memory, as a parse on
 * the main thread could.
 */
export function workerHeapMb(bytes: number): number {
  return Math.max(256, Math.ceil((12 * bytes) / 2 ** 20));
}

export interface WorkerReadOptions {
  /** Stops the read (the source closes): the worker is terminated and the read refused. */
  readonly signal?: AbortSignal;
  /** The worker's heap bound (resourceLimits.maxOldGenerationSizeMb). */
  readonly maxHeapMb: number;
}

/** The worker's entry: the compiled file beside this one, or the TypeScript source through a tsx bootstrap. */
function startWorker(task: WorkerTask, maxHeapMb: number): Worker {
  const options = { workerData: task, resourceLimits: { maxOldGenerationSizeMb: maxHeapMb }, execArgv: [] };
  if (import.meta.url.endsWith('.js')) return new Worker(new URL('./whitelist-worker.js', import.meta.url), options);
  const entry = new URL('./whitelist-worker.ts', import.meta.url).href;
  return new Worker(new URL('./ts-worker.mjs', import.meta.url), { ...options, argv: [entry] });
}

/**
 * Reads and strictly parses a whitelist file in a worker: the document
 * readWhitelistFile would give, with the same refusals, except that a
 * `tenants` array comes as {@link PackedTenants} (which buildSnapshot reads).
 */
export function readWhitelistFileInWorker(path: string, options: WorkerReadOptions): Promise<unknown> {
  const { maxHeapMb } = options;
  const failed = (why: string) => new WhitelistFileError(`cannot read ${path}: the reading thread ${why}`, 'unreachable');
  return new Promise((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(failed('was stopped'));
      return;
    }
    let worker: Worker;
    try {
      worker = startWorker({ path }, maxHeapMb);
    } catch (error) {
      reject(failed(`did not start (${(error as Error).message})`));
      return;
    }
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', stop);
      // Left on the worker, these would keep the document (through the promise) as long as it lives.
      worker.removeAllListeners();
      worker.on('error', () => undefined);
      // Its heap held the parsed document: give it back now, not when the thread winds down.
      void worker.terminate();
      outcome();
    };
    const stop = (): void => settle(() => reject(failed('was stopped')));
    signal?.addEventListener('abort', stop, { once: true });
    worker.once('message', (answer: WorkerAnswer) => {
      settle(() => {
        if (answer.kind === 'refused') reject(new WhitelistFileError(answer.message, answer.refusal));
        else if (answer.kind === 'document') resolve(answer.document);
        else {
          (answer.document as Record<string, unknown>)['tenants'] = new PackedTenants(answer.tenants);
          resolve(answer.document);
        }
      });
    });
    worker.once('error', (error: Error & { code?: string }) => {
      const why = error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `ran out of its ${maxHeapMb} MiB heap` : `failed (${error.message})`;
      settle(() => reject(failed(why)));
    });
    worker.once('exit', (code) => settle(() => reject(failed(`exited with code ${code} before it answered`))));
  });
}
