/**
 * The thread that reads a large whitelist file (see read-in-worker.ts): it
 * reads and strictly parses the file exactly as the main thread would, then
 * posts the document back with its tenants packed, so that the parsed
 * document never lives on the heap whose pauses stall requests.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TenantPacker, type PackedTenantFields } from '../model/packed-tenants.ts';
import { readWhitelistFile, WhitelistFileError } from './read-file.ts';
import type { WorkerAnswer, WorkerChunk, WorkerTask } from './read-in-worker.ts';

const { path, tenantsPerChunk } = workerData as WorkerTask;
const port = parentPort!;

/** Hands a chunk of tenants over as soon as it is parsed: its buffers move, nothing is copied. */
function send(tenants: PackedTenantFields): void {
  const chunk: WorkerChunk = { kind: 'chunk', tenants };
  port.postMessage(chunk, buffersOf(tenants));
}

function buffersOf(packed: PackedTenantFields): ArrayBuffer[] {
  return [packed.texts, packed.textEnds, packed.oins, packed.oinEnds, packed.digests].map((array) => array.buffer as ArrayBuffer);
}

let answer: WorkerAnswer;
let transfer: ArrayBuffer[] = [];
try {
  // The tenants are packed from their text as the parser reports them, and
  // dropped from the document meanwhile. Its strings die with this thread:
  // no need to copy them off the text.
  const packer = tenantsPerChunk === undefined ? new TenantPacker() : new TenantPacker(send, tenantsPerChunk);
  const document = await readWhitelistFile(path, { detached: false, elements: packer });
  const tenants = typeof document === 'object' && document !== null && !Array.isArray(document) ? (document as Record<string, unknown>)['tenants'] : undefined;
  if (Array.isArray(tenants)) {
    const packed = packer.fields();
    // In its own place, so the main thread's document keeps the file's field order.
    (document as Record<string, unknown>)['tenants'] = null;
    answer = { kind: 'packed', document, tenants: packed };
    transfer = buffersOf(packed);
  } else {
    answer = { kind: 'document', document };
  }
} catch (error) {
  // Anything else fails the thread, and the main thread refuses the load.
  if (!(error instanceof WhitelistFileError)) throw error;
  answer = { kind: 'refused', message: error.message, refusal: error.refusal };
}
port.postMessage(answer, transfer);
