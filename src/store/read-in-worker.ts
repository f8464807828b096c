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
import { PackedTenants, PackedTexts, StreamedTenants, type PackedTenantFields, type PackedTextFields } from '../model/packed-tenants.ts';
import { WhitelistFileError } from './read-file.ts';
import type { RefusalCause } from './source.ts';

/** What the worker is asked (workerData). */
export interface WorkerTask {
  readonly path: string;
  /** Send the tenants in chunks of this many as they are parsed (see WorkerChunk); unset: all at the end. */
  readonly tenantsPerChunk?: number;
  /** Validate each tenant under these rules too, and send the result instead of its text (see prepared.ts). */
  readonly validation?: ValidationTask;
}

/** Validation rules as they cross to the thread (a RegExp does not). */
export interface ValidationTask {
  readonly pattern: string;
  readonly flags: string;
  readonly certificatesConfigured: boolean | undefined;
}

/** The rules a build validates tenants under, for the reading thread to validate them by in advance. */
export interface WorkerValidation {
  readonly oinPattern: RegExp;
  readonly certificatesConfigured?: boolean;
}

/** Tenants parsed so far, in order; the parse may still fail. */
export interface WorkerChunk {
  readonly kind: 'chunk';
  readonly tenants: PackedTenantFields;
}

/**
 * What it answers, once, at the end (after any chunks). A top-level
 * `revokedTokens` array comes as its elements' texts, null in its place.
 */
export type WorkerAnswer =
  /** `document` with `tenants` null in its place; the tenants packed beside it. */
  | { readonly kind: 'packed'; readonly document: unknown; readonly tenants: PackedTenantFields; readonly revokedTokens?: PackedTextFields; readonly revision: string }
  /** A document without a tenants array, as parsed (the build refuses it). */
  | { readonly kind: 'document'; readonly document: unknown; readonly revokedTokens?: PackedTextFields; readonly revision: string }
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
  /**
   * Resolve as soon as this many tenants are parsed, with `tenants` as
   * {@link StreamedTenants} that keep arriving (and fail, not the promise,
   * when the rest of the file is refused): a build can then run while the
   * file is parsed. Unset: resolve once the whole file is parsed.
   */
  readonly tenantsPerChunk?: number;
  /** Told, once the whole file has parsed, the SHA-256 (hex) of exactly the bytes parsed; undefined when the read failed. */
  readonly revision?: (digest: string | undefined) => void;
  /**
   * Validate the tenants on the reading thread too, under these rules: for
   * a build without a previous snapshot only (a first load), since a
   * prepared tenant crosses without its text.
   */
  readonly validation?: WorkerValidation;
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
  const { maxHeapMb, tenantsPerChunk } = options;
  const failed = (why: string) => new WhitelistFileError(`cannot read ${path}: the reading thread ${why}`, 'unreachable');
  return new Promise((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(failed('was stopped'));
      return;
    }
    let worker: Worker;
    const { validation } = options;
    const task: WorkerTask = {
      path,
      ...(tenantsPerChunk === undefined ? {} : { tenantsPerChunk }),
      ...(validation === undefined
        ? {}
        : { validation: { pattern: validation.oinPattern.source, flags: validation.oinPattern.flags, certificatesConfigured: validation.certificatesConfigured } }),
    };
    try {
      worker = startWorker(task, maxHeapMb);
    } catch (error) {
      reject(failed(`did not start (${(error as Error).message})`));
      return;
    }
    let settled = false;
    // Once chunks arrived, the promise has resolved with them: the end of the read settles the stream instead.
    let streamed: StreamedTenants | undefined;
    const settle = (outcome: () => void, digest?: string): void => {
      if (settled) return;
      settled = true;
      options.revision?.(digest);
      signal?.removeEventListener('abort', stop);
      // Left on the worker, these would keep the document (through the promise) as long as it lives.
      worker.removeAllListeners();
      worker.on('error', () => undefined);
      // Its heap held the parsed document: give it back now, not when the thread winds down.
      void worker.terminate();
      outcome();
    };
    const refuse = (error: WhitelistFileError): void => settle(() => (streamed ? streamed.fail(error) : reject(error)));
    const stop = (): void => refuse(failed('was stopped'));
    signal?.addEventListener('abort', stop, { once: true });
    worker.on('message', (message: WorkerChunk | WorkerAnswer) => {
      try {
        answered(message);
      } catch (error) {
        // Packed fields that do not fit together (a fault): refused, never a crash of the process from this listener.
        const refusal = failed(`answered what cannot be read (${(error as Error).message})`);
        if (!settled) refuse(refusal);
        else if (streamed) streamed.fail(refusal);
        else reject(refusal);
      }
    });
    const answered = (message: WorkerChunk | WorkerAnswer): void => {
      if (settled) return;
      if (message.kind === 'chunk') {
        if (!streamed) {
          streamed = new StreamedTenants();
          resolve({ tenants: streamed });
        }
        streamed.add(message.tenants);
        return;
      }
      const answer = message;
      if (answer.kind !== 'refused' && answer.revokedTokens) {
        (answer.document as Record<string, unknown>)['revokedTokens'] = new PackedTexts(answer.revokedTokens);
      }
      if (answer.kind === 'refused') {
        refuse(new WhitelistFileError(answer.message, answer.refusal));
      } else if (answer.kind === 'document') {
        // Chunks come only from a top-level tenants array; a document without one never sends any.
        settle(() => (streamed ? streamed.fail(failed('answered without its tenants')) : resolve(answer.document)), answer.revision);
      } else {
        settle(() => {
          const document = answer.document as Record<string, unknown>;
          if (streamed) {
            streamed.add(answer.tenants);
            streamed.finish(document);
          } else {
            document['tenants'] = new PackedTenants(answer.tenants);
            resolve(document);
          }
        }, answer.revision);
      }
    };
    worker.once('error', (error: Error & { code?: string }) => {
      const why = error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `ran out of its ${maxHeapMb} MiB heap` : `failed (${error.message})`;
      refuse(failed(why));
    });
    worker.once('exit', (code) => refuse(failed(`exited with code ${code} before it answered`)));
  });
}
